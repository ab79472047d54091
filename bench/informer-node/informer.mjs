// The @kubernetes/client-node side of bench/informer-bench.py.
//
//   node informer.mjs --kubeconfig PATH --namespace NS
//
// Runs makeInformer() on the ConfigMaps of NS with add/update/delete
// handlers that count events and stamp the first and last one
// (process.hrtime, CLOCK_MONOTONIC on Linux, the driver's clock), and
// answers the same commands on standard input, with the same JSON lines on
// standard output, as `informer-bench watch` (bench/informer-bench.c):
//   report TAG | wait FIELD N TAG | quit
// Its node_modules are installed by the driver into the build directory
// from package-lock.json; nothing here is part of dpf itself.
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import * as k8s from '@kubernetes/client-node';

function arg(name) {
    const i = process.argv.indexOf(name);
    if (i < 0 || i + 1 >= process.argv.length) {
        process.stderr.write(
            'usage: informer.mjs --kubeconfig PATH --namespace NS\n');
        process.exit(2);
    }
    return process.argv[i + 1];
}

const kubeconfig = arg('--kubeconfig');
const namespace = arg('--namespace');
const kc = new k8s.KubeConfig();
kc.loadFromFile(kubeconfig);
const core = kc.makeApiClient(k8s.CoreV1Api);
const informer = k8s.makeInformer(
    kc, `/api/v1/namespaces/${namespace}/configmaps`,
    () => core.listNamespacedConfigMap({namespace}));

const now = () => Number(process.hrtime.bigint());
const n = {synced: 0, adds: 0, updates: 0, deletes: 0, events: 0};
const t = {first: 0, last: 0, lastAdd: 0, firstUpd: 0, lastUpd: 0};
let connects = 0;
let errors = 0;

function stamp(field) {
    const ns = now();
    n[field]++;
    n.events++;
    if (!t.first) {
        t.first = ns;
    }
    t.last = ns;
    if (field === 'adds') {
        t.lastAdd = ns;
    } else if (field === 'updates') {
        if (!t.firstUpd) {
            t.firstUpd = ns;
        }
        t.lastUpd = ns;
    }
}

informer.on('add', () => stamp('adds'));
informer.on('update', () => stamp('updates'));
informer.on('delete', () => stamp('deletes'));
informer.on('connect', () => { connects++; });
informer.on('error', (err) => {
    // The informer stops on an error; restart it after a pause, as the
    // client-node documentation's example does.
    errors++;
    process.stderr.write(`informer error: ${err}\n`);
    setTimeout(() => informer.start(), 1000);
});

function memory() {
    const s = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (key) => {
        const m = s.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm'));
        return m ? Number(m[1]) : 0;
    };
    return {rss_kb: kb('VmRSS'), hwm_kb: kb('VmHWM'), anon_kb: kb('RssAnon')};
}

function report(tag) {
    const cpu = process.cpuUsage();
    const mem = memory();
    const cached = informer.list(namespace).length;
    process.stdout.write(JSON.stringify({
        tag, impl: 'client-node', now_ns: now(),
        synced: n.synced, adds: n.adds, updates: n.updates,
        deletes: n.deletes, events: n.events, cached,
        first_ns: t.first, last_ns: t.last, last_add_ns: t.lastAdd,
        first_update_ns: t.firstUpd, last_update_ns: t.lastUpd,
        rss_kb: mem.rss_kb, hwm_kb: mem.hwm_kb, anon_kb: mem.anon_kb,
        cpu_ms: (cpu.user + cpu.system) / 1000,
        heap_used_kb: Math.round(process.memoryUsage().heapUsed / 1024),
        connects, errors,
    }) + '\n');
}

let waits = [];
function checkWaits() {
    waits = waits.filter((w) => {
        if (n[w.field] >= w.target) {
            report(w.tag);
            return false;
        }
        return true;
    });
}
// Waits are answered within 20 ms; the handlers stamp the exact times.
const tick = setInterval(checkWaits, 20);

const rl = readline.createInterface({input: process.stdin});
rl.on('line', (line) => {
    const [verb, field, target, tag] = line.trim().split(/\s+/);
    if (verb === 'quit') {
        clearInterval(tick);
        informer.stop();
        process.exit(0);
    } else if (verb === 'report' && field) {
        report(field);
    } else if (verb === 'wait' && field in n && tag) {
        waits.push({field, target: Number(target), tag});
        checkWaits();
    } else {
        process.stdout.write('{"error":"bad command"}\n');
    }
});
rl.on('close', () => process.exit(0));

await informer.start();
n.synced = 1;
