"""dmsd against a Python gNMI/gNOI client generated at test time from
lib/gnmi/proto with Debian's python3-grpcio and python3-grpc-tools, over
mutual TLS, pushing into dpf-rshim-emu (issue 9's acceptance)."""
import os
import subprocess
import time

import grpc
import pytest

from bfb_util import parse_bfb, sample_bfb
from dmsd_util import Dmsd, gen_client, make_pki
from rshim_util import RshimEmu

CHUNK = 64 * 1024
CFG = b"UPDATE_DPU_OS=yes\nWITH_NIC_FW_UPDATE=yes\nbfb_modify_os() {\n  :\n}\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    # the CA is the one dpf-server creates for the control plane
    return make_pki(str(tmp_path_factory.mktemp("pki")), control_plane=True)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return gen_client(str(tmp_path_factory.mktemp("pyclient")))


OPN = "900-9D3B6-00CV-AA0"
FW = "32.43.2026"


def device(tmp_path, pki, install="1s", reboot="300ms"):
    """dpf-rshim-emu with the DPU's ports in a sysfs tree, and dmsd on it."""
    sysfs = os.path.join(str(tmp_path), "sys")
    emu = RshimEmu(str(tmp_path), install=install, reboot=reboot,
                   extra=["--sysfs", sysfs, "--opn", OPN,
                          "--fw-version", FW])
    d = Dmsd(str(tmp_path), pki, emu.dir, extra=["-sysfs", sysfs])
    d.sysfs = sysfs
    return d, emu


@pytest.fixture
def env(tmp_path, pki):
    d, emu = device(tmp_path, pki)
    try:
        yield d, emu
    finally:
        rc, emu_rc = d.stop(), emu.stop()  # both, whatever the first says
    assert rc == 0, d.logtext()[-3000:]
    assert emu_rc == 0, emu.logtext()[-3000:]


def channel(d, pki, who="client", ca="ca"):
    def rd(name):
        with open(os.path.join(pki, name), "rb") as f:
            return f.read()
    if who is None:
        creds = grpc.ssl_channel_credentials(rd(f"{ca}.crt"))
    else:
        creds = grpc.ssl_channel_credentials(rd(f"{ca}.crt"), rd(f"{who}.key"),
                                             rd(f"{who}.crt"))
    return grpc.secure_channel(f"127.0.0.1:{d.port}", creds)


def mode_path(pb):
    g = pb["gnmi_pb2"]
    return g.Path(elem=[g.PathElem(name=n)
                        for n in ("nvidia", "mode", "config", "mode")])


def set_mode(pb, ch, mode):
    g = pb["gnmi_pb2"]
    stub = pb["gnmi_pb2_grpc"].gNMIStub(ch)
    return stub.Set(g.SetRequest(update=[g.Update(
        path=mode_path(pb), val=g.TypedValue(string_val=mode))]), timeout=30)


def install(pb, ch, version, data, end=True, chunks=None):
    o = pb["gnoi_os_pb2"]

    def requests():
        yield o.InstallRequest(transfer_request=o.TransferRequest(
            version=version, package_size=len(data) if end else 0))
        sent = 0
        for i in range(0, len(data), CHUNK):
            if chunks is not None and sent >= chunks:
                return  # the client gives up without TransferEnd
            yield o.InstallRequest(transfer_content=data[i:i + CHUNK])
            sent += 1
        if end:
            yield o.InstallRequest(transfer_end=o.TransferEnd())

    stub = pb["gnoi_os_pb2_grpc"].OSStub(ch)
    return list(stub.Install(requests(), timeout=120))


def activate(pb, ch, version):
    o = pb["gnoi_os_pb2"]
    return pb["gnoi_os_pb2_grpc"].OSStub(ch).Activate(
        o.ActivateRequest(version=version), timeout=120)


def reboot_status(pb, ch):
    s, t = pb["gnoi_system_pb2"], pb["gnoi_types_pb2"]
    return pb["gnoi_system_pb2_grpc"].SystemStub(ch).RebootStatus(
        s.RebootStatusRequest(subcomponents=[t.Path(elem=[
            t.PathElem(name="CPU")])]), timeout=30)


def poll_done(pb, ch, timeout=90):
    deadline = time.time() + timeout
    while True:
        r = reboot_status(pb, ch)
        if not r.active:
            return r
        assert time.time() < deadline, "RebootStatus stayed active"
        time.sleep(0.2)


def test_dpf_sequence_over_mutual_tls(env, pki, pb):
    d, emu = env
    # the certificates chain to the control plane's CA (dpf-server's)
    subj = subprocess.run(["openssl", "x509", "-noout", "-subject", "-in",
                           os.path.join(pki, "ca.crt")], check=True,
                          capture_output=True, text=True).stdout
    assert "CN = dpf-ca" in subj, subj
    o, s = pb["gnoi_os_pb2"], pb["gnoi_system_pb2"]
    bfb = sample_bfb(version="4.9.1-13542", kernel_size=300001)
    with channel(d, pki) as ch:
        # 1. gNMI Set of the mode, per-operation result
        r = set_mode(pb, ch, "DPU")
        assert [x.op for x in r.response] == [3]  # UPDATE
        # 2. Install the BFB: TransferReady ... Validated
        resp = install(pb, ch, "bf-bundle-4.9.1.bfb", bfb)
        kinds = [x.WhichOneof("response") for x in resp]
        assert kinds[0] == "transfer_ready" and kinds[-1] == "validated"
        assert resp[-1].validated.version == "bf-bundle-4.9.1.bfb"
        # already there: Validated at once, no transfer
        again = install(pb, ch, "bf-bundle-4.9.1.bfb", b"", end=False)
        assert [x.WhichOneof("response") for x in again] == ["validated"]
        # 3. Install the bf.cfg as <dpu>.cfg
        resp = install(pb, ch, "dpu1.cfg", CFG)
        assert resp[-1].WhichOneof("response") == "validated"
        assert open(os.path.join(d.images, "dpu1.cfg"), "rb").read() == CFG
        # 4. Activate "<bfb>;<cfg>"
        r = activate(pb, ch, "bf-bundle-4.9.1.bfb;dpu1.cfg")
        assert r.WhichOneof("response") == "activate_ok"
        # 5. RebootStatus until not active
        r = poll_done(pb, ch)
        assert r.status.status == s.RebootStatus.STATUS_SUCCESS, r
        assert r.count == 1
        # the device ends with the BFB's version and the cfg's content
        st = emu.state_json()
        assert st["installed"]["version"] == "4.9.1-13542"
        assert st["installed"]["bfcfg"] == CFG.decode()
        assert st["installed"]["bfbBytes"] == len(bfb)
        assert "DPU is ready" in emu.misc()
        # gNMI Get reads the mode and the installed version
        g = pb["gnmi_pb2"]
        stub = pb["gnmi_pb2_grpc"].gNMIStub(ch)
        got = stub.Get(g.GetRequest(path=[mode_path(pb), g.Path(elem=[
            g.PathElem(name=n) for n in ("nvidia", "os", "state",
                                         "version")])]), timeout=30)
        vals = [n.update[0].val.string_val for n in got.notification]
        assert vals == ["DPU", "4.9.1-13542"]
        caps = stub.Capabilities(g.CapabilityRequest(), timeout=30)
        assert caps.gNMI_version == "0.7.0"
        v = pb["gnoi_os_pb2_grpc"].OSStub(ch).Verify(o.VerifyRequest(),
                                                     timeout=30)
        assert v.version == "4.9.1-13542"
    # the mode survives a restart
    d.stop()
    d.start()
    with channel(d, pki) as ch:
        set_mode(pb, ch, "NIC")
    d.stop()
    d.start()
    with channel(d, pki) as ch:
        g = pb["gnmi_pb2"]
        got = pb["gnmi_pb2_grpc"].gNMIStub(ch).Get(
            g.GetRequest(path=[mode_path(pb)]), timeout=30)
        assert got.notification[0].update[0].val.string_val == "NIC"


def test_refusals(env, pki, pb):
    d, emu = env
    # no client certificate, and one from another CA: the TLS handshake fails
    for who, ca in ((None, "ca"), ("foreign", "ca")):
        with channel(d, pki, who=who, ca=ca) as ch:
            with pytest.raises(grpc.RpcError) as e:
                set_mode(pb, ch, "DPU")
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # a valid certificate whose user is not in -allowed_users
    d.stop()
    d.args += ["-allowed_users", "dpf-provisioning-client,admin"]
    d.start()
    with channel(d, pki, who="stranger") as ch:
        with pytest.raises(grpc.RpcError) as e:
            set_mode(pb, ch, "DPU")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert '"someone-else" is not in -allowed_users' in e.value.details()
    with channel(d, pki) as ch:
        # a bad mode value and an unknown path name what is wrong
        with pytest.raises(grpc.RpcError) as e:
            set_mode(pb, ch, "SMART")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert '"DPU" or "NIC"' in e.value.details()

        # a BFB with a flipped byte: Install refuses it, naming the image
        blob = bytearray(sample_bfb())
        images, _ = parse_bfb(bytes(blob))
        blob[images[2]["offset"] + 24 + 5000] ^= 0x04
        resp = install(pb, ch, "bad.bfb", bytes(blob))
        err = resp[-1].install_error
        assert resp[-1].WhichOneof("response") == "install_error"
        assert err.type == pb["gnoi_os_pb2"].InstallError.INTEGRITY_FAIL
        assert 'image #2 "image" (ID 62' in err.detail
        assert not os.path.exists(os.path.join(d.images, "bad.bfb"))
        # and one that reached the folder another way: Activate refuses it
        # before anything is written to boot
        with open(os.path.join(d.images, "planted.bfb"), "wb") as f:
            f.write(bytes(blob))
        r = activate(pb, ch, "planted.bfb")
        assert r.WhichOneof("response") == "activate_error"
        assert 'image #2 "image" (ID 62' in r.activate_error.detail
        assert "nothing was written" in r.activate_error.detail
        assert emu.state_json()["bootSessions"] == 0
        r = activate(pb, ch, "missing.bfb;dpu1.cfg")
        assert r.activate_error.type == \
            pb["gnoi_os_pb2"].ActivateError.NON_EXISTENT_VERSION
        assert '"missing.bfb" is not installed' in r.activate_error.detail

        # an Install stream cut in the middle: nothing partial is left
        good = sample_bfb(kernel_size=400000)
        with pytest.raises(grpc.RpcError) as e:
            install(pb, ch, "cut.bfb", good, end=False, chunks=3)
        assert e.value.code() == grpc.StatusCode.ABORTED
        assert "without TransferEnd" in e.value.details()
        left = [f for f in os.listdir(d.images) if f != ".dmsd"]
        assert sorted(left) == ["planted.bfb"]
        # and a retry succeeds
        resp = install(pb, ch, "cut.bfb", good)
        assert resp[-1].WhichOneof("response") == "validated"
        assert open(os.path.join(d.images, "cut.bfb"), "rb").read() == good
        # Install checked it; changed afterwards on disk, Activate checks
        # it again and refuses it before anything reaches boot
        images, _ = parse_bfb(good)
        with open(os.path.join(d.images, "cut.bfb"), "r+b") as f:
            f.seek(images[2]["offset"] + 24 + 100)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0x01]))
        r = activate(pb, ch, "cut.bfb")
        assert r.WhichOneof("response") == "activate_error"
        assert 'image #2 "image" (ID 62' in r.activate_error.detail
        assert emu.state_json()["bootSessions"] == 0


def test_killed_during_activate_is_retriable(tmp_path, pki, pb):
    emu = RshimEmu(str(tmp_path), install="3s", reboot="300ms")
    d = Dmsd(str(tmp_path), pki, emu.dir)
    s = pb["gnoi_system_pb2"]
    try:
        with channel(d, pki) as ch:
            install(pb, ch, "os.bfb", sample_bfb(version="7.7.7"))
            install(pb, ch, "dpu1.cfg", CFG)
            r = activate(pb, ch, "os.bfb;dpu1.cfg")
            assert r.WhichOneof("response") == "activate_ok"
            assert reboot_status(pb, ch).active
        d.kill()  # SIGKILL while the DPU installs
        d.start()
        with channel(d, pki) as ch:
            r = reboot_status(pb, ch)
            assert not r.active
            assert r.status.status == s.RebootStatus.STATUS_RETRIABLE_FAILURE
            assert "activate again" in r.status.message
            # the retry succeeds
            r = activate(pb, ch, "os.bfb;dpu1.cfg")
            assert r.WhichOneof("response") == "activate_ok"
            r = poll_done(pb, ch)
            assert r.status.status == s.RebootStatus.STATUS_SUCCESS, r
        assert emu.state_json()["installed"]["version"] == "7.7.7"
    finally:
        d.stop()
        emu.stop()


def test_file_service_confined_to_image_folder(env, pki, pb):
    import hashlib
    d, emu = env
    f, t = pb["gnoi_file_pb2"], pb["gnoi_types_pb2"]

    def put(remote, data, digest=None):
        def reqs():
            yield f.PutRequest(open=f.PutRequest.Details(remote_file=remote,
                                                         permissions=644))
            yield f.PutRequest(contents=data)
            yield f.PutRequest(hash=t.HashType(
                method=t.HashType.SHA256,
                hash=digest or hashlib.sha256(data).digest()))
        return stub.Put(reqs(), timeout=30)

    with channel(d, pki) as ch:
        stub = pb["gnoi_file_pb2_grpc"].FileStub(ch)
        put(os.path.join(d.images, "notes", "a.txt"), b"hello")
        assert open(os.path.join(d.images, "notes", "a.txt")).read() == "hello"
        st = stub.Stat(f.StatRequest(path="notes/a.txt"), timeout=30)
        assert st.stats[0].size == 5 and st.stats[0].permissions == 644
        got = list(stub.Get(f.GetRequest(remote_file="notes/a.txt"),
                            timeout=30))
        assert got[0].contents == b"hello"
        assert got[-1].hash.hash == hashlib.sha256(b"hello").digest()
        stub.Remove(f.RemoveRequest(remote_file="notes/a.txt"), timeout=30)
        assert not os.path.exists(os.path.join(d.images, "notes", "a.txt"))

        parent = os.path.dirname(d.images)
        for bad in ("../x", "notes/../../x", "/etc/x", ".dmsd/mode",
                    os.path.join(parent, "x")):
            with pytest.raises(grpc.RpcError) as e:
                put(bad, b"escape")
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, bad
            assert bad in e.value.details()
        assert not os.path.exists(os.path.join(parent, "x"))
        assert not os.path.exists("/etc/x")
        with pytest.raises(grpc.RpcError) as e:
            stub.Get(f.GetRequest(remote_file="../dmsd.log"),
                     timeout=30).next()
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # a wrong hash keeps nothing
        with pytest.raises(grpc.RpcError) as e:
            put("b.txt", b"data", digest=b"\0" * 32)
        assert e.value.code() == grpc.StatusCode.DATA_LOSS
        assert sorted(os.listdir(d.images)) == [".dmsd", "notes"]
        assert os.listdir(os.path.join(d.images, "notes")) == []


def test_credentials_and_none_modes(tmp_path, pki, pb):
    emu = RshimEmu(str(tmp_path))
    root = open(os.path.join(pki, "ca.crt"), "rb").read()
    cred = ["-auth", "credentials", "-username", "admin",
            "-password", "s3cret"]
    d = Dmsd(str(tmp_path), pki, emu.dir, auth=cred + ["-allowed_users",
                                                        "admin"])
    try:
        ch = grpc.secure_channel(f"127.0.0.1:{d.port}",
                                 grpc.ssl_channel_credentials(root))
        stub = pb["gnoi_system_pb2_grpc"].SystemStub(ch)
        req = pb["gnoi_system_pb2"].TimeRequest()
        r = stub.Time(req, metadata=[("username", "admin"),
                                     ("password", "s3cret")], timeout=30)
        assert abs(r.time / 1e9 - time.time()) < 60
        for md in ([("username", "admin"), ("password", "wrong")], []):
            with pytest.raises(grpc.RpcError) as e:
                stub.Time(req, metadata=md, timeout=30)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ch.close()
        d.stop()
        # -allowed_users applies in credentials mode too
        d.args = d.args[:d.args.index("-allowed_users")] + \
            ["-allowed_users", "operator"] + \
            d.args[d.args.index("-allowed_users") + 2:]
        d.start()
        with grpc.secure_channel(f"127.0.0.1:{d.port}",
                                 grpc.ssl_channel_credentials(root)) as ch:
            with pytest.raises(grpc.RpcError) as e:
                pb["gnoi_system_pb2_grpc"].SystemStub(ch).Time(
                    req, metadata=[("username", "admin"),
                                   ("password", "s3cret")], timeout=30)
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        d.stop()
    # none: plaintext on loopback only
    d = Dmsd(str(tmp_path), pki, emu.dir, auth=["-auth", "none"],
             bind="0.0.0.0", start=False)
    r = subprocess.run(d.args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "allowed only on a loopback -bind_address" in r.stderr + r.stdout
    d = Dmsd(str(tmp_path), pki, emu.dir, auth=["-auth", "none"])
    try:
        with grpc.insecure_channel(f"127.0.0.1:{d.port}") as ch:
            r = pb["gnoi_system_pb2_grpc"].SystemStub(ch).Time(req,
                                                              timeout=30)
            assert r.time > 0
    finally:
        d.stop()
        emu.stop()


def test_subscribe_once_and_stream(env, pki, pb):
    import threading
    d, emu = env
    g = pb["gnmi_pb2"]
    ver = g.Path(elem=[g.PathElem(name=n)
                       for n in ("nvidia", "os", "state", "version")])
    with channel(d, pki) as ch:
        stub = pb["gnmi_pb2_grpc"].gNMIStub(ch)
        once = g.SubscribeRequest(subscribe=g.SubscriptionList(
            mode=g.SubscriptionList.ONCE,
            subscription=[g.Subscription(path=mode_path(pb))]))
        got = list(stub.Subscribe(iter([once]), timeout=30))
        assert [r.WhichOneof("response") for r in got] == \
            ["update", "sync_response"]
        assert got[0].update.update[0].val.string_val == "DPU"

        bad = g.SubscribeRequest(subscribe=g.SubscriptionList(
            mode=g.SubscriptionList.STREAM,
            subscription=[g.Subscription(path=mode_path(pb),
                                         mode=g.SAMPLE,
                                         sample_interval=100_000_000)]))
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Subscribe(iter([bad]), timeout=30))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "1 to 60 s" in e.value.details()

        stream = g.SubscribeRequest(subscribe=g.SubscriptionList(
            mode=g.SubscriptionList.STREAM,
            subscription=[
                g.Subscription(path=mode_path(pb), mode=g.ON_CHANGE),
                g.Subscription(path=ver, mode=g.SAMPLE,
                               sample_interval=1_000_000_000)]))
        hold = threading.Event()

        def reqs():
            yield stream
            hold.wait(60)  # keep the stream open

        call = stub.Subscribe(reqs(), timeout=60)
        seen = []
        try:
            for r in call:
                seen.append((time.monotonic(), r))
                kinds = [x.WhichOneof("response") for _, x in seen]
                if kinds.count("sync_response") == 1 and len(kinds) == 3:
                    set_mode(pb, ch, "NIC")
                modes = [x.update.update[0].val.string_val for _, x in seen
                         if x.WhichOneof("response") == "update" and
                         x.update.update[0].path.elem[1].name == "mode"]
                samples = [t for t, x in seen
                           if x.WhichOneof("response") == "update" and
                           x.update.update[0].path.elem[1].name == "os"]
                if "NIC" in modes and len(samples) >= 3:
                    break
        finally:
            call.cancel()
            hold.set()
        assert modes == ["DPU", "NIC"]  # initial value, then the change
        # SAMPLE every second (loose bounds: a loaded machine)
        gaps = [b - a for a, b in zip(samples[1:], samples[2:])]
        assert all(0.5 < gap < 5 for gap in gaps), gaps


def gpath(pb, *elems):
    """A gnmi.Path from ("name", {key: value}) or "name" elements."""
    g = pb["gnmi_pb2"]
    out = []
    for e in elems:
        if isinstance(e, tuple):
            out.append(g.PathElem(name=e[0], key=e[1]))
        else:
            out.append(g.PathElem(name=e))
    return g.Path(elem=out)


def component(pb, leaf):
    return gpath(pb, "components", ("component", {"name": "DPU"}), "state",
                 leaf)


def iface(pb, port, leaf, where="state"):
    return gpath(pb, "interfaces", ("interface", {"name": port}), where, leaf)


def get_values(pb, ch, *paths):
    g = pb["gnmi_pb2"]
    got = pb["gnmi_pb2_grpc"].gNMIStub(ch).Get(g.GetRequest(path=paths),
                                               timeout=30)
    out = []
    for n in got.notification:
        v = n.update[0].val
        out.append(getattr(v, v.WhichOneof("value")))
    return out


def port_file(d, fn, name):
    return os.path.join(d.sysfs, "bus", "pci", "devices", f"0000:4b:00.{fn}",
                        "net", f"p{fn}", name)


def test_gnmi_identity_versions_and_ports(env, pki, pb, tmp_path):
    d, emu = env
    with channel(d, pki) as ch:
        vals = get_values(pb, ch, component(pb, "id"),
                          component(pb, "description"),
                          component(pb, "part-no"),
                          component(pb, "firmware-version"),
                          iface(pb, "p0", "oper-status"),
                          iface(pb, "p1", "mtu"),
                          iface(pb, "p1", "mtu", where="config"))
        assert vals == ["pcie-0000:4b:00.2", "BlueField-3(Rev 1)", OPN, FW,
                        "UP", 1500, 1500]
        # the MTU is the port's, typed uint_val, read when asked
        with open(port_file(d, 1, "mtu"), "w") as f:
            f.write("9000\n")
        assert get_values(pb, ch, iface(pb, "p1", "mtu")) == [9000]
        # no BFB installed yet: the software version is not known
        g = pb["gnmi_pb2"]
        stub = pb["gnmi_pb2_grpc"].gNMIStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.Get(g.GetRequest(path=[component(pb, "software-version")]),
                     timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "software-version" in e.value.details()
        # a port the DPU does not have, and a name that tries to leave the
        # device's directory, are both unknown ports
        for port in ("p7", "../../../../etc", "p0/../p1"):
            with pytest.raises(grpc.RpcError) as e:
                stub.Get(g.GetRequest(path=[iface(pb, port, "mtu")]),
                         timeout=30)
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            assert f'no port "{port}"' in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            stub.Get(g.GetRequest(path=[component(pb, "serial-no")]),
                     timeout=30)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert "no such path" in e.value.details()

        # install and activate: the device then reports the BFB it runs
        install(pb, ch, "os.bfb", sample_bfb(version="4.9.2-777"))
        install(pb, ch, "dpu1.cfg", CFG)
        activate(pb, ch, "os.bfb;dpu1.cfg")
        poll_done(pb, ch)
        assert get_values(pb, ch, component(pb, "software-version")) == \
            ["4.9.2-777"]
    # a dmsd with no record of that activation (fresh state) still reads
    # the version from the device's own log
    d.stop()
    d.args += ["-state_dir", str(tmp_path / "fresh-state")]
    d.start()
    with channel(d, pki) as ch:
        assert get_values(pb, ch, component(pb, "software-version"),
                          g.Path(elem=[g.PathElem(name=n) for n in (
                              "nvidia", "os", "state", "version")])) == \
            ["4.9.2-777", ""]


def reboot(pb, ch, method=None, delay=0, message=""):
    s = pb["gnoi_system_pb2"]
    m = s.COLD if method is None else method
    return pb["gnoi_system_pb2_grpc"].SystemStub(ch).Reboot(
        s.RebootRequest(method=m, delay=delay, message=message), timeout=30)


def test_reboot_resets_the_dpu_and_status_follows(env, pki, pb):
    d, emu = env
    s = pb["gnoi_system_pb2"]
    with channel(d, pki) as ch:
        before = reboot_status(pb, ch).count
        # refused: no method, a method the rshim device cannot do
        with pytest.raises(grpc.RpcError) as e:
            reboot(pb, ch, method=s.UNKNOWN)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "method must be given" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            reboot(pb, ch, method=s.HALT)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "HALT" in e.value.details()

        reboot(pb, ch, method=s.WARM, delay=2_000_000_000,
               message="maintenance window 7")
        r = reboot_status(pb, ch)
        assert r.active and r.count == before + 1
        assert r.method == s.WARM
        assert 0 < r.wait <= 2_000_000_000
        assert "maintenance window 7" in r.reason
        # the delay has not run out: the DPU was not reset yet
        assert "Rebooting..." not in emu.logtext()
        with pytest.raises(grpc.RpcError) as e:
            reboot(pb, ch)
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        r = poll_done(pb, ch)
        assert r.status.status == s.RebootStatus.STATUS_SUCCESS, r
        assert "rebooted and is ready: maintenance window 7" in r.reason
        # it went through the device: SW_RESET, then the reboot log
        assert "INFO[MISC]: Rebooting..." in emu.logtext()
        assert "DPU is ready" in emu.misc()


def test_killed_during_reboot_is_retriable(tmp_path, pki, pb):
    d, emu = device(tmp_path, pki, reboot="300ms")
    s = pb["gnoi_system_pb2"]
    try:
        with channel(d, pki) as ch:
            reboot(pb, ch, delay=30_000_000_000)
            assert reboot_status(pb, ch).active
        d.kill()
        d.start()
        with channel(d, pki) as ch:
            r = reboot_status(pb, ch)
            assert not r.active
            assert r.status.status == s.RebootStatus.STATUS_RETRIABLE_FAILURE
            assert "reboot again" in r.status.message
            reboot(pb, ch)
            r = poll_done(pb, ch)
            assert r.status.status == s.RebootStatus.STATUS_SUCCESS, r
    finally:
        d.stop()
        emu.stop()


def stream_until(stub, request, done, timeout=60):
    """Run a STREAM Subscribe, calling done(responses) after each one
    until it returns true; returns [(monotonic time, response)]."""
    import threading
    hold = threading.Event()

    def reqs():
        yield request
        hold.wait(timeout)

    call = stub.Subscribe(reqs(), timeout=timeout)
    seen = []
    try:
        for r in call:
            seen.append((time.monotonic(), r))
            if done(seen):
                break
    finally:
        call.cancel()
        hold.set()
    return seen


def test_subscribe_ports_sample_and_on_change(tmp_path, pki, pb):
    # a reboot long enough for the 100 ms ON_CHANGE check to see the
    # ports down
    d, emu = device(tmp_path, pki, reboot="1500ms")
    g = pb["gnmi_pb2"]
    try:
        with channel(d, pki) as ch:
            stub = pb["gnmi_pb2_grpc"].gNMIStub(ch)
            req = g.SubscribeRequest(subscribe=g.SubscriptionList(
                mode=g.SubscriptionList.STREAM,
                subscription=[
                    g.Subscription(path=iface(pb, "p0", "oper-status"),
                                   mode=g.ON_CHANGE),
                    g.Subscription(path=iface(pb, "p1", "mtu"),
                                   mode=g.SAMPLE,
                                   sample_interval=1_000_000_000),
                    g.Subscription(path=component(pb, "description"),
                                   mode=g.ON_CHANGE)]))
            state = {"step": 0}

            def updates(seen, leaf):
                out = []
                for _, x in seen:
                    if x.WhichOneof("response") != "update":
                        continue
                    u = x.update.update[0]
                    if u.path.elem[-1].name == leaf:
                        v = u.val
                        out.append(getattr(v, v.WhichOneof("value")))
                return out

            def done(seen):
                kinds = [x.WhichOneof("response") for _, x in seen]
                if state["step"] == 0 and "sync_response" in kinds:
                    # initial values are in; change the MTU and reboot
                    state["step"] = 1
                    with open(port_file(d, 1, "mtu"), "w") as f:
                        f.write("9216\n")
                    reboot(pb, ch)
                oper = updates(seen, "oper-status")
                return oper[-2:] == ["DOWN", "UP"] and \
                    9216 in updates(seen, "mtu")

            seen = stream_until(stub, req, done)
        kinds = [x.WhichOneof("response") for _, x in seen]
        # the initial values, then one sync_response
        assert kinds[:4] == ["update"] * 3 + ["sync_response"]
        assert kinds.count("sync_response") == 1
        oper = updates(seen, "oper-status")
        assert oper[0] == "UP" and oper[-2:] == ["DOWN", "UP"]
        assert updates(seen, "description") == ["BlueField-3(Rev 1)"]
        mtus = updates(seen, "mtu")
        assert mtus[0] == 1500 and mtus[-1] == 9216
        samples = [t for t, x in seen if x.WhichOneof("response") == "update"
                   and x.update.update[0].path.elem[-1].name == "mtu"]
        gaps = [b - a for a, b in zip(samples[1:], samples[2:])]
        assert all(0.5 < gap < 5 for gap in gaps), gaps
    finally:
        d.stop()
        emu.stop()


def test_subscribe_poll(env, pki, pb):
    import queue
    d, emu = env
    g = pb["gnmi_pb2"]
    with channel(d, pki) as ch:
        stub = pb["gnmi_pb2_grpc"].gNMIStub(ch)
        q = queue.Queue()

        def reqs():
            yield g.SubscribeRequest(subscribe=g.SubscriptionList(
                mode=g.SubscriptionList.POLL,
                subscription=[g.Subscription(path=mode_path(pb)),
                              g.Subscription(path=iface(pb, "p0", "mtu"))]))
            while True:
                item = q.get(timeout=60)
                if item is None:
                    return  # half-close: the call ends
                yield item

        call = stub.Subscribe(reqs(), timeout=60)
        it = iter(call)

        def take(n):
            return [next(it) for _ in range(n)]

        first = take(3)
        assert [x.WhichOneof("response") for x in first] == \
            ["update", "update", "sync_response"]
        assert first[0].update.update[0].val.string_val == "DPU"
        assert first[1].update.update[0].val.uint_val == 1500
        set_mode(pb, ch, "NIC")
        q.put(g.SubscribeRequest(poll=g.Poll()))
        again = take(3)
        assert [x.WhichOneof("response") for x in again] == \
            ["update", "update", "sync_response"]
        assert again[0].update.update[0].val.string_val == "NIC"
        q.put(None)
        assert list(it) == []
        assert call.code() == grpc.StatusCode.OK
