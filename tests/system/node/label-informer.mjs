// A label-selected ConfigMap informer (@kubernetes/client-node), for
// tests/system/test_api_watch_semantics.py.
//
//   node label-informer.mjs KUBECONFIG NAMESPACE SELECTOR
//
// Prints one JSON line per handler call ({"ev":"add"|"update"|"delete",
// "name":..., "rv":...}) and, for each "dump" line read on stdin, the
// names in the informer's cache ({"cache":[...]}).
import * as readline from 'node:readline';
import * as k8s from '@kubernetes/client-node';

const [kubeconfig, namespace, labelSelector] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const informer = k8s.makeInformer(
    kc, `/api/v1/namespaces/${namespace}/configmaps`,
    () => core.listNamespacedConfigMap({namespace, labelSelector}),
    labelSelector);

const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
for (const ev of ['add', 'update', 'delete']) {
    informer.on(ev, (obj) => say({ev, name: obj.metadata.name,
                                  rv: obj.metadata.resourceVersion,
                                  labels: obj.metadata.labels || {}}));
}
informer.on('error', (err) => {
    say({ev: 'error', message: String(err)});
    setTimeout(() => informer.start(), 500);
});
informer.on('connect', () => say({ev: 'connect'}));

readline.createInterface({input: process.stdin}).on('line', (line) => {
    if (line.trim() === 'dump') {
        say({cache: informer.list(namespace).map((o) => o.metadata.name)
                 .sort()});
    }
}).on('close', () => { informer.stop(); process.exit(0); });

await informer.start();
say({ev: 'started'});
