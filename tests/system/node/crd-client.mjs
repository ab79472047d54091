// Lists and watches a custom resource with @kubernetes/client-node, for
// tests/system/test_api_crds.py.
//
//   node crd-client.mjs KUBECONFIG GROUP VERSION PLURAL NAMESPACE
//
// Prints {"list":[names]} from CustomObjectsApi, then {"ev":"started"} and
// one {"ev":TYPE,"name":...,"size":...} line per watch event.
import * as k8s from '@kubernetes/client-node';

const [kubeconfig, group, version, plural, namespace] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const api = kc.makeApiClient(k8s.CustomObjectsApi);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const list = await api.listNamespacedCustomObject(
    {group, version, namespace, plural});
say({list: list.items.map((o) => o.metadata.name).sort(),
     rv: list.metadata.resourceVersion});
const watch = new k8s.Watch(kc);
await watch.watch(
    `/apis/${group}/${version}/namespaces/${namespace}/${plural}`,
    {resourceVersion: list.metadata.resourceVersion},
    (type, obj) => say({ev: type, name: obj.metadata.name,
                        size: obj.spec ? obj.spec.size : null}),
    (err) => { say({ev: 'done', err: err ? String(err) : null});
               process.exit(0); });
say({ev: 'started'});
