"""dts takes a stock DOCA dts_config.ini (issue 11, item 1, first part):
DOCA's units and numeric forms, its hardware-only and remote providers
(reported not available, the daemon keeps running) and its numbered
prometheus_aggr endpoint keys."""
from dtsio_util import Dts

DOCA_INI = [
    "data-file-size-limit=128",        # DOCA: megabytes
    "data-file-time-limit=1800",
    "name-match=1",                    # DOCA's numeric form
    "enable-provider=hcaperf",         # BlueField hardware
    "enable-provider=ngauge",
    "enable-provider=grpc.sysfs",      # remote collection
    "enable-provider=amber",
    "sync-time-limit=10000",
    "counter-buffer-size=65536",
    "event-buffer-size=65536",
]


def provider_up(d, name):
    return d.metric("dts_provider_up", f'{{provider="{name}"}}')


def test_stock_doca_config_starts(tmp_path):
    d = Dts(tmp_path, DOCA_INI).start()
    try:
        for p in ("hcaperf", "ngauge", "grpc.sysfs", "amber"):
            d.wait_metric("dts_provider_up", lambda v: v == 0,
                          labels=f'{{provider="{p}"}}')
        assert d.healthy()
        log = d.log.read_text()
        assert ('provider=grpc.sysfs reason="remote collection over gRPC '
                'is not implemented"') in log
        assert "configuration rejected" not in log
    finally:
        assert d.stop() == 0


def test_numbered_prometheus_aggr_endpoints(tmp_path):
    """prometheus-aggr-endpoint.N: dts scrapes each (here its own
    /metrics, so the re-exported series carry source=<host:port>)."""
    d = Dts(tmp_path, ["disable-provider=sysfs",
                       "enable-provider=prometheus_aggr"])
    url = f"http://127.0.0.1:{d.port}/metrics"
    with open(d.conf / "dts_config.ini", "a") as f:
        f.write(f"prometheus-aggr-endpoint.0={url}\n")
    d.start()
    try:
        d.wait_metric("dts_prometheus_aggr_up", lambda v: v == 1,
                      labels=f'{{source="127.0.0.1:{d.port}"}}')
    finally:
        assert d.stop() == 0
