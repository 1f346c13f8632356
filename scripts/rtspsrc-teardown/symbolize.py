#!/usr/bin/python3
"""Names the rtspsrc frames of a repro.py --bt dump (Debian ships the plugin stripped).

Usage: symbolize.py FILE.bt   (the dump must hold gdb's "info sharedlibrary", as --bt writes)
Each frame in libgstrtsp*.so gets its file offset, the call it returns from, and the
GST_DEBUG strings (__FUNCTION__ literals) referenced just before it: enough to place it
in gstrtspsrc.c / gstrtspconnection.c. Needs binutils (objdump, readelf)."""
import re, subprocess, sys
# map return addresses in a gdb "thread apply all bt" + "info sharedlibrary" dump to file
# offsets of the stripped GStreamer RTSP libraries, and name the call site by the rodata
# strings (GST_DEBUG's __FUNCTION__ literals) referenced nearby
bt = open(sys.argv[1]).read()
libs = {}
for m in re.finditer(r"^(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+Yes.*?\s(/\S+)$", bt, re.M):
    path = m.group(2)
    if "libgstrtsp" in path:
        text = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout
        t = int(re.search(r"\.text\s+PROGBITS\s+([0-9a-f]+)", text).group(1), 16)
        libs[path.split("/")[-1]] = (path, int(m.group(1), 16) - t)
data = {}
def strat(path, off):
    if path not in data: data[path] = open(path, "rb").read()
    d = data[path]; e = d.find(b"\0", off)
    s = d[off:e]
    return s.decode("latin1") if 2 < len(s) < 80 and all(32 <= c < 127 for c in s) else None
cur = None
for line in bt.splitlines():
    if line.startswith("Thread "):
        cur = line; print(line)
    m = re.match(r"#(\d+)\s+(0x[0-9a-f]+) in .* at (\S+)$", line)
    if not m or cur is None: continue
    lib = m.group(3).split("/")[-1]
    if lib not in libs: continue
    path, base = libs[lib]; off = int(m.group(2), 16) - base
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "--start-address=%#x" % (off - 0x300),
                          "--stop-address=%#x" % off, path], capture_output=True, text=True).stdout.splitlines()
    strs = []
    for l in dis:
        mm = re.search(r"lea\s+0x[0-9a-f]+\(%rip\),%\w+\s+# ([0-9a-f]+)", l)
        if mm:
            s = strat(path, int(mm.group(1), 16))
            if s and (s.startswith("gst_") or " " in s): strs.append(s)
    call = [l for l in dis if "call" in l][-1:] 
    print("  #%s %s+%#x  call: %s\n      strings before: %s" % (m.group(1), lib, off, call[0].split("\t")[-1] if call else "?", strs[-4:]))
