#!/usr/bin/python3
"""How long does set_state(NULL) take on an rtspsrc client whose server stopped answering?

A reproduction independent of burstwatch (GStreamer 1.22, Debian 12). Needs:
    apt-get install -y python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 \
        gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav gdb

Each trial runs in a process of its own and uses three processes: an RTSP server
(GstRtspServer, videotestsrc -> x264enc -> rtph264pay; `--serve`), optionally a TCP proxy
between client and server (`--proxy`), and the client (`--trial`):
    rtspsrc location=... protocols=P tcp-timeout=T latency=100 ! decodebin ! fakesink
or, with --sink appsink, burstwatch's shape (buffer-mode=none, videorate, GRAY8 320x240,
appsink max-buffers=4 drop=false, pulled by the main thread). Once frames flow, the fault is
applied, the client waits --after seconds (2.5 = "burstwatch noticed a 2 s stall"), and
set_state(NULL) is timed.

Faults (scenario names):
  freeze         SIGSTOP the server (sockets stay open, nothing is answered)
  kill           SIGKILL the server (the kernel closes its sockets)
  proxy-boundary the proxy stops forwarding (both ways, sockets kept open) right after a
                 complete interleaved RTP frame
  proxy-midframe the proxy stops forwarding in the MIDDLE of an interleaved '$' frame: the
                 4-byte header and half the payload reach the client, the rest never does
                 (what a camera whose link drops does: a TCP segment ends mid-frame)
  proxy-piece    the proxy forwards raw pieces of <= 1500 bytes as it reads them, one every
                 5 ms (a ~2.4 Mbit/s link, like burstwatch's tests/common/network.rs with a
                 rate limit), and stops forwarding after the current one, wherever that
                 falls (it says whether that was mid-frame; both happen, by chance)
  proxy-trickle  as proxy-midframe, then one more byte of that frame every 1.5 s, 6 times,
                 then nothing: a peer slower than tcp-timeout per byte (pathological)
  connect-frozen the server is SIGSTOPped before the client starts: DESCRIBE is never
                 answered (the kernel still accepts the TCP connection); NULL after 1 s
  connect-midresponse  the proxy forwards half of the DESCRIBE response and then stalls

What it shows (GStreamer 1.22.0): NULL blocks for up to tcp-timeout only when the stream
stops in the middle of an RTSP message (proxy-midframe, connect-midresponse, sometimes
proxy-piece): gstrtspconnection's read is uncancellable once a message's first byte is in
(may_cancel = FALSE), so rtspsrc's flush cannot interrupt it and the state change waits on
the stream lock the reading task holds. A stop at a message boundary (freeze, kill,
proxy-boundary, connect-frozen) takes ~0.1 s (teardown-timeout) or less.

Usage:
  repro.py                         all scenarios but proxy-trickle, tcp-timeout 20 s and
                                   2 s, NULL 0 s and 2.5 s after the fault, 3 runs each
                                   (about 15 minutes)
  repro.py --tcp-timeout 20 --scenarios freeze,proxy-midframe --runs 5 --after 0,2.5
  repro.py --bt ...                when NULL takes > 2 s, gdb backtraces of every client
                                   thread go to --outdir (the gdb attach inflates that run)
  repro.py --log ...               GST_DEBUG=rtspsrc:6,rtspconnection:6 per trial in --outdir
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, threading, time

import gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst, GLib  # noqa: E402

ME = os.path.abspath(__file__)
TRICKLE_BYTES = 6
PY = sys.executable


# ---------------------------------------------------------------- server ---------------
def serve(port):
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GstRtspServer
    Gst.init(None)
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        "( videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 ! "
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=800 ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


# ---------------------------------------------------------------- proxy ----------------
def split_units(buf):
    """Complete units at the start of buf: interleaved '$' frames and RTSP messages."""
    units, i = [], 0
    while i < len(buf):
        if buf[i] == 0x24:  # '$' channel len16 payload
            if len(buf) - i < 4:
                break
            n = 4 + int.from_bytes(buf[i + 2:i + 4], "big")
            if len(buf) - i < n:
                break
            units.append(("frame", bytes(buf[i:i + n])))
            i += n
        else:
            end = buf.find(b"\r\n\r\n", i)
            if end < 0:
                break
            head = bytes(buf[i:end + 4])
            clen = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    clen = int(line.split(b":", 1)[1])
            if len(buf) - (end + 4) < clen:
                break
            units.append(("text", bytes(buf[i:end + 4 + clen])))
            i = end + 4 + clen
    del buf[:i]
    return units


def proxy(listen_port, target_port, arm):
    """Forwards one client connection; stdin commands (or --arm) make it stop forwarding."""
    mode = {"m": arm}  # None | boundary | midframe | midresponse; 'stopped' once stopped
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", listen_port))
    lsock.listen(4)
    print("ready", flush=True)
    held = []

    def up(c, s):  # client -> server, raw
        while True:
            d = c.recv(65536)
            if not d:
                return
            if mode["m"] != "stopped":
                s.sendall(d)

    def down_raw(s, c):  # server -> client in pieces of <= 1500 bytes, as read
        shadow = bytearray()  # only to tell whether the stop fell inside a frame
        while True:
            d = s.recv(1500)
            if not d:
                return
            if mode["m"] == "stopped":
                continue
            if mode["m"] == "piece":
                mode["m"] = "stopped"
                split_units(shadow)
                print("stopped after a piece, %s" % ("MID-FRAME (%d bytes of a unit passed)" % len(shadow)
                                                     if shadow else "at a unit boundary"), flush=True)
                continue
            c.sendall(d)
            shadow += d
            split_units(shadow)
            time.sleep(0.005)  # ~2.4 Mbit/s: a slow link, so that pieces span frames

    def down(s, c):  # server -> client, unit by unit
        if arm == "raw":
            return down_raw(s, c)
        buf = bytearray()
        while True:
            d = s.recv(65536)
            if not d:
                c.shutdown(socket.SHUT_WR)
                return
            if mode["m"] == "stopped":
                continue  # keep draining the server, forward nothing
            buf += d
            for kind, u in split_units(buf):
                m = mode["m"]
                if m == "stopped":
                    break
                if m == "midframe" and kind == "frame" and len(u) > 100:
                    c.sendall(u[:4 + (len(u) - 4) // 2])
                    mode["m"] = "stopped"
                    print("stopped midframe sent=%d of %d" % (4 + (len(u) - 4) // 2, len(u)), flush=True)
                    break
                if m == "trickle" and kind == "frame" and len(u) > 100:
                    half = 4 + (len(u) - 4) // 2
                    c.sendall(u[:half])
                    mode["m"] = "stopped"
                    print("stopped midframe, now trickling", flush=True)
                    for k in range(TRICKLE_BYTES):  # one more byte every 1.5 s
                        time.sleep(1.5)
                        c.sendall(u[half + k:half + k + 1])
                    break
                if m == "midresponse" and kind == "text" and u.startswith(b"RTSP/") and b"Content-Base" in u:
                    c.sendall(u[:len(u) // 2])
                    mode["m"] = "stopped"
                    print("stopped midresponse", flush=True)
                    break
                c.sendall(u)
                if m == "boundary" and kind == "frame":
                    mode["m"] = "stopped"
                    print("stopped at boundary", flush=True)
                    break
            if mode["m"] == "stopped":
                buf.clear()

    def accept():
        while True:
            c, _ = lsock.accept()
            s = socket.create_connection(("127.0.0.1", target_port))
            held.extend([c, s])
            threading.Thread(target=up, args=(c, s), daemon=True).start()
            threading.Thread(target=down, args=(s, c), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    for line in sys.stdin:
        mode["m"] = line.strip()


# ---------------------------------------------------------------- client trial ---------
def trial(a):
    Gst.init(None)
    extra = "buffer-mode=none " if a.sink == "appsink" else ""
    src = ("rtspsrc name=src location=rtsp://127.0.0.1:%d/test protocols=%s latency=100 "
           "tcp-timeout=%d %s! decodebin ! " % (a.client_port, a.proto, int(a.tcp_timeout * 1e6), extra))
    if a.sink == "appsink":
        tail = ("videoconvert ! videorate ! video/x-raw,framerate=30/1 ! videoscale add-borders=false ! "
                "videoconvert ! video/x-raw,format=GRAY8,width=320,height=240,pixel-aspect-ratio=1/1 ! "
                "appsink name=sink sync=false max-buffers=4 drop=false enable-last-sample=false")
    else:
        tail = "fakesink name=sink sync=false"
    pipe = Gst.parse_launch(src + tail)
    sink = pipe.get_by_name("sink")
    seen = {"n": 0, "last": None}

    def poll(dt):  # count frames for dt seconds, from this (the main) thread
        end = time.monotonic() + dt
        while time.monotonic() < end:
            if a.sink == "appsink":
                s = sink.emit("try-pull-sample", 20 * Gst.MSECOND)
                if s is not None:
                    seen["n"] += 1
            else:
                s = sink.get_property("last-sample")
                pts = s.get_buffer().pts if s is not None else None
                if pts is not None and pts != seen["last"]:
                    seen["last"] = pts
                    seen["n"] += 1
                time.sleep(0.01)

    out = {"frames_before": 0, "frames_after_fault": 0}
    pipe.set_state(Gst.State.PLAYING)
    if a.scenario.startswith("connect-"):
        poll(1.0)
    else:
        t = time.monotonic()
        while seen["n"] < 10 and time.monotonic() - t < 20:
            poll(0.1)
        out["frames_before"] = seen["n"]
        if seen["n"] < 10:
            out["error"] = "no frames"
        print("FAULT", flush=True)           # the parent applies the fault now
        sys.stdin.readline()                 # ... and says when it did
        n0 = seen["n"]
        poll(a.after)
        out["frames_after_fault"] = seen["n"] - n0
    print("NULL_START", flush=True)
    t0 = time.monotonic()
    ret = pipe.set_state(Gst.State.NULL)
    out["null_s"] = round(time.monotonic() - t0, 3)
    out["ret"] = ret.value_nick
    print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------- orchestration --------
def spawn(args, **kw):
    return subprocess.Popen([PY, ME] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1, **kw)


def run_one(a, scenario, tcp_timeout, after, port, tag):
    uses_proxy = scenario.startswith("proxy-") or scenario == "connect-midresponse"
    server = spawn(["--serve", str(port)])
    assert server.stdout.readline().strip() == "ready"
    prox, client_port = None, port
    if uses_proxy:
        client_port = port + 1
        arm = {"connect-midresponse": ["--arm", "midresponse"], "proxy-piece": ["--arm", "raw"]}.get(scenario, [])
        prox = spawn(["--proxy", str(client_port), str(port)] + arm)
        assert prox.stdout.readline().strip() == "ready"
    if scenario == "connect-frozen":
        server.send_signal(signal.SIGSTOP)
    env = dict(os.environ)
    if a.log:
        env["GST_DEBUG"] = "rtspsrc:6,rtspconnection:6"
        env["GST_DEBUG_NO_COLOR"] = "1"
        env["GST_DEBUG_FILE"] = os.path.join(a.outdir, tag + ".gstlog")
    client = spawn(["--trial", scenario, "--tcp-timeout", str(tcp_timeout), "--after", str(after),
                    "--client-port", str(client_port), "--proto", a.proto, "--sink", a.sink], env=env)
    result = None
    watchdog = threading.Timer(a.cap, client.kill)
    watchdog.start()
    try:
        for line in client.stdout:
            line = line.strip()
            if line == "FAULT":
                if scenario == "freeze":
                    server.send_signal(signal.SIGSTOP)
                elif scenario == "kill":
                    server.kill()
                elif uses_proxy:
                    prox.stdin.write(scenario.split("-", 1)[1] + "\n")
                    prox.stdin.flush()
                    print("  proxy: " + prox.stdout.readline().strip(), flush=True)
                client.stdin.write("go\n")
                client.stdin.flush()
            elif line == "NULL_START" and a.bt:
                threading.Thread(target=backtrace, args=(client, a, tag), daemon=True).start()
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        client.wait()
        if result is None:
            result = {"null_s": None, "killed_after_s": a.cap}
    finally:
        watchdog.cancel()
        for p in (client, prox, server):
            if p and p.poll() is None:
                p.kill()
                p.wait()
    return result


def backtrace(client, a, tag):
    time.sleep(2.0)
    if client.poll() is not None:
        return
    path = os.path.join(a.outdir, tag + ".bt")
    with open(path, "w") as f:
        subprocess.run(["gdb", "-p", str(client.pid), "-batch", "-ex", "thread apply all bt",
                        "-ex", "info sharedlibrary"],
                       stdout=f, stderr=subprocess.STDOUT)
    print("  backtraces: " + path, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve", type=int)
    p.add_argument("--proxy", type=int, nargs=2)
    p.add_argument("--arm")
    p.add_argument("--trial")
    p.add_argument("--client-port", type=int)
    p.add_argument("--tcp-timeout", default="20,2", help="seconds, comma-separated (default 20,2)")
    p.add_argument("--after", default="0,2.5", help="seconds between fault and NULL (default 0,2.5)")
    p.add_argument("--scenarios", default="freeze,kill,proxy-boundary,proxy-midframe,proxy-piece,connect-frozen,connect-midresponse")
    p.add_argument("--proto", default="tcp", choices=["tcp", "udp"])
    p.add_argument("--sink", default="fakesink", choices=["fakesink", "appsink"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--port", type=int, default=24554)
    p.add_argument("--cap", type=float, default=90, help="kill a trial after this many seconds")
    p.add_argument("--bt", action="store_true")
    p.add_argument("--log", action="store_true")
    p.add_argument("--outdir", default="/tmp/rtspsrc-teardown")
    a = p.parse_args()
    if a.serve:
        return serve(a.serve)
    if a.proxy:
        return proxy(a.proxy[0], a.proxy[1], a.arm)
    if a.trial:
        a.scenario, a.tcp_timeout, a.after = a.trial, float(a.tcp_timeout), float(a.after)
        return trial(a)
    os.makedirs(a.outdir, exist_ok=True)
    rows, port = [], a.port
    for scenario in a.scenarios.split(","):
        afters = [0.0] if scenario.startswith("connect-") else [float(x) for x in a.after.split(",")]
        for tt in [float(x) for x in a.tcp_timeout.split(",")]:
            for after in afters:
                ds = []
                for r in range(a.runs):
                    tag = "%s-%s-%s-tt%g-after%g-run%d" % (scenario, a.proto, a.sink, tt, after, r)
                    res = run_one(a, scenario, tt, after, port, tag)
                    port += 2
                    print("%-60s %s" % (tag, json.dumps(res)), flush=True)
                    if res and res.get("null_s") is not None:
                        ds.append(res["null_s"])
                if ds:
                    rows.append((scenario, a.proto, a.sink, tt, after, len(ds), min(ds),
                                 statistics.median(ds), max(ds)))
    print("\n%-20s %-5s %-9s %6s %6s %4s %7s %7s %7s" % (
        "scenario", "proto", "sink", "tcp-to", "after", "n", "min", "median", "max"))
    for r in rows:
        print("%-20s %-5s %-9s %5gs %5gs %4d %6.2fs %6.2fs %6.2fs" % r)


if __name__ == "__main__":
    main()
