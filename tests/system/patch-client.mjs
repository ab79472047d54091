// A small @kubernetes/client-node program for the patch and apply system
// tests (tests/system/test_api_strategic.py, test_api_apply.py): one
// typed-API PATCH call, as a controller or node agent written with
// client-node makes it.
//
//   node patch-client.mjs KUBECONFIG TARGET NAME NAMESPACE CONTENT-TYPE BODY
//                         [FIELD-MANAGER [force]]
//
// TARGET: node-status | pod-status | deployment | configmap | bfb.
// Prints {"code": 200, "object": {...}} or {"code": N, "body": "..."}.
import * as k8s from '@kubernetes/client-node';

const [kubeconfig, target, name, namespace, ctype, bodyText, fieldManager,
       force] = process.argv.slice(2);
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const apps = kc.makeApiClient(k8s.AppsV1Api);
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const opts = k8s.setHeaderOptions('Content-Type', ctype);
const body = JSON.parse(bodyText);
const extra = {};
if (fieldManager) {
    extra.fieldManager = fieldManager;
}
if (force === 'force') {
    extra.force = true;
}

const calls = {
    'node-status': () => core.patchNodeStatus({name, body, ...extra}, opts),
    'pod-status': () =>
        core.patchNamespacedPodStatus({name, namespace, body, ...extra}, opts),
    deployment: () =>
        apps.patchNamespacedDeployment({name, namespace, body, ...extra}, opts),
    configmap: () =>
        core.patchNamespacedConfigMap({name, namespace, body, ...extra}, opts),
    bfb: () => custom.patchNamespacedCustomObject(
        {group: 'provisioning.dpu.nvidia.com', version: 'v1alpha1',
         plural: 'bfbs', namespace, name, body, ...extra},
        opts),
};

try {
    const obj = await calls[target]();
    process.stdout.write(JSON.stringify({code: 200, object: obj}) + '\n');
} catch (e) {
    process.stdout.write(JSON.stringify(
        {code: e.code ?? 0, body: String(e.body ?? e.message)}) + '\n');
}
