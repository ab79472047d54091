"""Start and stop dpf-rshim-emu for a test, and read its misc and state."""
import json
import os
import signal
import subprocess
import time

from conftest import binary


class RshimEmu:
    def __init__(self, workdir, install="400ms", reboot="200ms",
                 build_binary=None, extra=()):
        self.dir = os.path.join(workdir, "rshim0")
        self.state = os.path.join(self.dir, "emu-state.json")
        self.log = os.path.join(workdir, "rshim-emu.log")
        exe = build_binary or binary("dpf-rshim-emu", "dpf-rshim-emu")
        mark = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.proc = subprocess.Popen(
            [exe, "--dir", self.dir, "--install-time", install,
             "--reboot-time", reboot] + list(extra),
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while "rshim device ready" not in self.logtext()[mark:]:
            assert self.proc.poll() is None, self.logtext()
            assert time.time() < deadline, "rshim emulator did not start"
            time.sleep(0.05)

    @property
    def boot(self):
        return os.path.join(self.dir, "boot")

    @property
    def misc_path(self):
        return os.path.join(self.dir, "misc")

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def misc(self):
        with open(self.misc_path) as f:
            return f.read()

    def command(self, text):
        with open(self.misc_path, "w") as f:
            f.write(text + "\n")

    def state_json(self):
        with open(self.state) as f:
            return json.load(f)

    def wait_misc(self, text, timeout=30):
        deadline = time.time() + timeout
        while True:
            m = self.misc()
            if text in m:
                return m
            assert time.time() < deadline, \
                f"misc never showed {text!r}; last:\n{m}\n{self.logtext()}"
            time.sleep(0.05)

    def push(self, data, timeout=60):
        """Write one boot session and wait until the emulator has read its
        end (a FIFO merges writers that overlap)."""
        before = self.state_json()["bootSessions"]
        with open(self.boot, "wb") as f:
            f.write(data)
        deadline = time.time() + timeout
        while True:
            st = self.state_json()
            if st["bootSessions"] > before and not st["sessionOpen"]:
                return
            assert time.time() < deadline, f"session never closed: {st}"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
