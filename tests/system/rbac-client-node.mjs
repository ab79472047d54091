// A small @kubernetes/client-node program for tests/system/test_api_rbac.py:
//
//   node rbac-client-node.mjs --kubeconfig PATH --namespace NS
//
// As the kubeconfig's user, lists the pods of NS and creates a ConfigMap
// there, and prints one JSON line: {"list": {"code", "message"},
// "create": {...}} with the HTTP code of each call (200/201 or the
// error's) and the Status message of a failure. The test copies it next to
// the node_modules that bench/informer-bench.py installs.
import * as k8s from '@kubernetes/client-node';

function arg(name) {
    const i = process.argv.indexOf(name);
    if (i < 0 || i + 1 >= process.argv.length) {
        process.stderr.write(
            'usage: rbac-client-node.mjs --kubeconfig PATH --namespace NS\n');
        process.exit(2);
    }
    return process.argv[i + 1];
}

const kc = new k8s.KubeConfig();
kc.loadFromFile(arg('--kubeconfig'));
const namespace = arg('--namespace');
const core = kc.makeApiClient(k8s.CoreV1Api);

async function call(ok, fn) {
    try {
        await fn();
        return {code: ok, message: ''};
    } catch (e) {
        let message = '';
        try {
            message = JSON.parse(e.body).message;
        } catch (_) {
            message = String(e.body ?? e.message);
        }
        return {code: e.code ?? 0, message};
    }
}

const list = await call(200, () => core.listNamespacedPod({namespace}));
const create = await call(201, () => core.createNamespacedConfigMap({
    namespace,
    body: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {generateName: 'from-node-'},
        data: {a: '1'},
    },
}));
process.stdout.write(JSON.stringify({list, create}) + '\n');
