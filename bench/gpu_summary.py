"""The two Python halves of bench/gpu.sh (standard library only, so it runs on any python3).

    python3 bench/gpu_summary.py vulkan FILE.json
        Lists the Vulkan physical devices the loader offers (what wgpu picks its adapter
        from): name, type, vendor, driver, API version; through ctypes and libvulkan.so.1,
        as vulkaninfo would. Writes them to FILE.json and prints them.

    python3 bench/gpu_summary.py table WORKDIR OUTDIR
        Reads what bench/gpu.sh left in WORKDIR (steps.tsv, each step's log, credit bench's
        JSON, the paper run) and OUTDIR/smi.csv, writes OUTDIR/gpu.json and prints the table.

    python3 bench/gpu_summary.py show gpu.json
        Prints the table of a gpu.json again (for instance the one the device call brought
        back).
"""

import csv
import ctypes
import json
import os
import statistics
import struct
import sys
import time

# ---------------------------------------------------------------------------------------
# Vulkan devices
# ---------------------------------------------------------------------------------------

DEVICE_TYPES = {0: "other", 1: "integrated-gpu", 2: "discrete-gpu", 3: "virtual-gpu", 4: "cpu"}
VENDORS = {0x10DE: "NVIDIA", 0x1002: "AMD", 0x8086: "Intel", 0x10005: "Mesa"}
STRUCTURE_TYPE_APPLICATION_INFO = 0
STRUCTURE_TYPE_INSTANCE_CREATE_INFO = 1
STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2 = 1000059001
STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES = 1000196000


def api_version(v):
    return f"{(v >> 22) & 0x7F}.{(v >> 12) & 0x3FF}.{v & 0xFFF}"


def driver_version(vendor, v):
    if vendor == 0x10DE:  # NVIDIA packs 10.8.8.6 bits
        return f"{(v >> 22) & 0x3FF}.{(v >> 14) & 0xFF}.{(v >> 6) & 0xFF}"
    return api_version(v)


def c_string(raw):
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def vulkan_devices():
    """The physical devices of a Vulkan 1.2 instance, as dicts; raises RuntimeError."""
    try:
        lib = ctypes.CDLL("libvulkan.so.1")
    except OSError as e:
        raise RuntimeError(f"no Vulkan loader: {e}") from e

    class AppInfo(ctypes.Structure):
        _fields_ = [("sType", ctypes.c_int32), ("pNext", ctypes.c_void_p),
                    ("pApplicationName", ctypes.c_char_p), ("applicationVersion", ctypes.c_uint32),
                    ("pEngineName", ctypes.c_char_p), ("engineVersion", ctypes.c_uint32),
                    ("apiVersion", ctypes.c_uint32)]

    class CreateInfo(ctypes.Structure):
        _fields_ = [("sType", ctypes.c_int32), ("pNext", ctypes.c_void_p),
                    ("flags", ctypes.c_uint32), ("pApplicationInfo", ctypes.POINTER(AppInfo)),
                    ("enabledLayerCount", ctypes.c_uint32), ("ppEnabledLayerNames", ctypes.c_void_p),
                    ("enabledExtensionCount", ctypes.c_uint32),
                    ("ppEnabledExtensionNames", ctypes.c_void_p)]

    lib.vkCreateInstance.argtypes = [ctypes.POINTER(CreateInfo), ctypes.c_void_p,
                                     ctypes.POINTER(ctypes.c_void_p)]
    lib.vkCreateInstance.restype = ctypes.c_int32
    lib.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint32),
                                               ctypes.c_void_p]
    lib.vkEnumeratePhysicalDevices.restype = ctypes.c_int32
    lib.vkGetPhysicalDeviceProperties.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vkGetPhysicalDeviceProperties.restype = None
    lib.vkGetInstanceProcAddr.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.vkGetInstanceProcAddr.restype = ctypes.c_void_p
    lib.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.vkDestroyInstance.restype = None

    app = AppInfo(STRUCTURE_TYPE_APPLICATION_INFO, None, b"credit-gpu-probe", 1, b"none", 1,
                  (1 << 22) | (2 << 12))
    info = CreateInfo(STRUCTURE_TYPE_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None,
                      0, None)
    instance = ctypes.c_void_p()
    result = lib.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if result != 0:
        # -9, VK_ERROR_INCOMPATIBLE_DRIVER: the loader found no driver (ICD).
        raise RuntimeError(f"vkCreateInstance returned {result}"
                           + (" (VK_ERROR_INCOMPATIBLE_DRIVER: no driver found)" if result == -9 else ""))
    try:
        count = ctypes.c_uint32()
        lib.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        handles = (ctypes.c_void_p * count.value)()
        result = lib.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        if result not in (0, 5):  # VK_SUCCESS, VK_INCOMPLETE
            raise RuntimeError(f"vkEnumeratePhysicalDevices returned {result}")
        address = lib.vkGetInstanceProcAddr(instance, b"vkGetPhysicalDeviceProperties2")
        properties2 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(address) if address else None
        devices = []
        for handle in handles[: count.value]:
            props = ctypes.create_string_buffer(4096)
            lib.vkGetPhysicalDeviceProperties(handle, props)
            api, driver, vendor, device_id, kind = struct.unpack_from("<IIIIi", props.raw, 0)
            device = {
                "name": c_string(props.raw[20:276]),
                "type": DEVICE_TYPES.get(kind, str(kind)),
                "vendor": VENDORS.get(vendor, hex(vendor)),
                "device_id": hex(device_id),
                "api_version": api_version(api),
                "driver_version": driver_version(vendor, driver),
            }
            if properties2:
                # VkPhysicalDeviceDriverProperties chained to VkPhysicalDeviceProperties2.
                driver_props = ctypes.create_string_buffer(1024)
                struct.pack_into("<i", driver_props, 0, STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES)
                props2 = ctypes.create_string_buffer(16 + 4096)
                struct.pack_into("<iiQ", props2, 0, STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, 0,
                                 ctypes.addressof(driver_props))
                properties2(handle, props2)
                device["driver_name"] = c_string(driver_props.raw[20:276])
                device["driver_info"] = c_string(driver_props.raw[276:532])
            devices.append(device)
        return devices
    finally:
        lib.vkDestroyInstance(instance, None)


def cmd_vulkan(path):
    report = {"devices": [], "error": None,
              "env": {k: os.environ[k] for k in ("VK_DRIVER_FILES", "VK_ICD_FILENAMES")
                      if k in os.environ}}
    try:
        report["devices"] = vulkan_devices()
    except RuntimeError as e:
        report["error"] = str(e)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    if report["error"]:
        print(f"Vulkan: {report['error']}")
    if not report["devices"] and not report["error"]:
        print("Vulkan: an instance, but no physical device")
    for i, d in enumerate(report["devices"]):
        print(f"Vulkan device {i}: {adapter_line(d)}")
    return 0


def expected_adapter(devices):
    """The device wgpu's default (high-performance) choice takes: a discrete GPU first, then
    an integrated one, then whatever comes first. credit does not print the adapter itself."""
    for kind in ("discrete-gpu", "integrated-gpu", "virtual-gpu"):
        for d in devices:
            if d["type"] == kind:
                return adapter_line(d)
    return adapter_line(devices[0]) if devices else None


def adapter_line(d):
    driver = d.get("driver_name") or d["vendor"]
    info = d.get("driver_info") or d["driver_version"]
    return f"{d['name']} ({d['type']}, {driver} {info}, Vulkan {d['api_version']})"


# ---------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------

SHAPES = {  # as in bench/compare.py
    "paper": ([784, 100, 100, 10], 500, "MNIST, first 10,000"),
    "wide": ([784, 1000, 1000, 10], 500, "MNIST, first 10,000"),
    "cifar": ([3072, 200, 200, 10], 200, "dense random bytes, 10,000"),
}
SIDES = ["credit-wgpu", "torch-eager", "torch-compile"]

# The flex runs README.md's protocol table gives: configs/mnist.toml, seeds 0-2 (mean, sd),
# percent; and seed 0's accuracies.
FLEX_REFERENCE = {
    "test_accuracy_mean_field_pct": (96.31, 0.13),
    "test_accuracy_mean_network_pct": (96.53, 0.02),
    "layer1_very_important_pct": (4.86, 2.04),
    "layer2_very_important_pct": (3.88, 1.97),
    "layer3_very_important_pct": (10.77, 2.75),
    "layer1_unimportant_pct": (1.91, 0.08),
    "layer2_unimportant_pct": (1.49, 0.28),
    "layer3_unimportant_pct": (2.80, 2.04),
}
FLEX_SEED0 = {"test_accuracy_mean_field_pct": 96.42, "test_accuracy_mean_network_pct": 96.53}


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def read_steps(workdir):
    steps = {}
    for line in read_text(os.path.join(workdir, "steps.tsv")).splitlines():
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        name, rc, seconds, start, end = parts
        steps[name] = {"exit": rc, "seconds": float(seconds), "start": float(start), "end": float(end)}
    return steps


def status(step):
    if step is None:
        return "not run"
    rc = step["exit"]
    if rc == "skipped":
        return "skipped (budget)"
    if rc in ("124", "137"):
        return "timed out"
    return "ok" if rc == "0" else f"exit {rc}"


def read_smi(path):
    """(epoch seconds, utilisation %, memory MiB) per line of nvidia-smi's csv."""
    samples = []
    for row in csv.reader(read_text(path).splitlines()):
        if len(row) < 3:
            continue
        try:
            stamp = row[0].strip()
            t = time.mktime(time.strptime(stamp.split(".")[0], "%Y/%m/%d %H:%M:%S"))
            if "." in stamp:
                t += float("0." + stamp.split(".")[1])
            samples.append((t, float(row[1]), float(row[2])))
        except ValueError:
            continue
    return samples


def gpu_load(samples, step):
    if step is None:
        return None
    inside = [s for s in samples if step["start"] <= s[0] <= step["end"]]
    if not inside:
        return None
    return {"util_mean_pct": statistics.mean(s[1] for s in inside),
            "util_max_pct": max(s[1] for s in inside),
            "memory_max_mib": max(s[2] for s in inside), "samples": len(inside)}


def tests_result(text):
    tests = {}
    for line in text.splitlines():
        if line.startswith("test ") and " ... " in line:
            name, outcome = line[5:].split(" ... ", 1)
            tests[name.strip()] = outcome.strip()
    summary = [line for line in text.splitlines() if line.startswith("test result:")]
    return {"tests": tests, "result": summary[-1] if summary else None,
            "passed": sum(1 for v in tests.values() if v == "ok"),
            "failed": sum(1 for v in tests.values() if v.startswith("FAILED")),
            "panics": [line for line in text.splitlines() if "panicked at" in line][:5]}


def paper_run(workdir):
    run = os.path.join(workdir, "paper")
    summary = read_json(os.path.join(run, "summary.json"))
    rows = list(csv.DictReader(read_text(os.path.join(run, "metrics.csv")).splitlines()))
    report = {"summary": summary, "epochs_done": len(rows)}
    if rows:
        seconds = [float(r["train_seconds"]) for r in rows]
        last = rows[-1]
        report.update({
            "train_seconds_total": sum(seconds),
            "train_seconds_first_epoch": seconds[0],
            "train_seconds_median_epoch": statistics.median(seconds),
            "last_test_accuracy_pct": float(last["test_accuracy_pct"]),
        })
        classes = {}
        for key, value in last.items():
            if key.startswith("layer") and (key.endswith("_very_important") or key.endswith("_unimportant")):
                classes[key + "_pct"] = 100 * float(value)
        report["classes"] = classes
    values = dict(report.get("classes", {}))
    if summary:
        for key in ("test_accuracy_mean_field_pct", "test_accuracy_mean_network_pct"):
            values[key] = summary[key]
    report["against_flex"] = {
        key: {"wgpu": values[key], "flex_mean": mean, "flex_sd": sd,
              "diff_in_sd": (values[key] - mean) / sd if sd else None}
        for key, (mean, sd) in FLEX_REFERENCE.items() if key in values
    }
    report["flex_seed0"] = FLEX_SEED0
    return report


def step_name(side, shape):
    """The name bench/gpu.sh gives the step of `side` on `shape` (and its log, WORKDIR/NAME.log)."""
    return f"credit-{shape}" if side == "credit-wgpu" else f"{side}-{shape}"


def speed_rows(workdir, steps, samples):
    rows = []
    for shape, (sizes, batch, data) in SHAPES.items():
        for side in SIDES:
            name = step_name(side, shape)
            step = steps.get(name)
            if step is None:
                continue
            if side == "credit-wgpu":
                report = read_json(os.path.join(workdir, f"{name}.json"))
            else:
                report = last_json_line(read_text(os.path.join(workdir, f"{name}.log")))
            row = {"shape": shape, "sizes": sizes, "batch": batch, "data": data, "side": side,
                   "status": status(step), "wall_seconds": step["seconds"],
                   "gpu": gpu_load(samples, step)}
            if report:
                row.update({
                    "images_per_second": report.get("train_images_per_second"),
                    "epoch_seconds_median": report.get("epoch_seconds_median"),
                    "epoch_seconds": report.get("epoch_seconds"),
                    "train_images": report.get("train_images"),
                })
                for key in ("device", "device_name", "warmup_seconds", "last_loss",
                            "eval_images_per_second", "analyze_seconds", "torch"):
                    if key in report:
                        row[key] = report[key]
            rows.append(row)
    for row in rows:
        eager = next((r for r in rows if r["shape"] == row["shape"] and r["side"] == "torch-eager"), None)
        if eager and eager.get("images_per_second") and row.get("images_per_second"):
            row["vs_torch_eager"] = row["images_per_second"] / eager["images_per_second"]
    return rows


def cmd_table(workdir, outdir):
    steps = read_steps(workdir)
    samples = read_smi(os.path.join(outdir, "smi.csv"))
    vulkan = read_json(os.path.join(workdir, "vulkan.json")) or {}
    report = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "vulkan": vulkan,
        "adapter": expected_adapter(vulkan.get("devices") or []),
        "cubecl_wgpu_default_device": os.environ.get("CUBECL_WGPU_DEFAULT_DEVICE"),
        "tests": {"status": status(steps.get("tests")), **tests_result(read_text(os.path.join(workdir, "tests.log")))},
        "paper_run": {"status": status(steps.get("paper")),
                      "wall_seconds": steps["paper"]["seconds"] if "paper" in steps else None,
                      "gpu": gpu_load(samples, steps.get("paper")), **paper_run(workdir)},
        "speed": speed_rows(workdir, steps, samples),
        "steps": steps,
    }
    with open(os.path.join(outdir, "gpu.json"), "w") as f:
        json.dump(report, f, indent=1)
    show(report)
    return 0


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def show(report):
    devices = (report.get("vulkan") or {}).get("devices") or []
    print(f"adapter (Vulkan probe: the one wgpu's default choice takes): "
          f"{report.get('adapter') or 'no Vulkan device found'}"
          + (f" (of {len(devices)} Vulkan devices)" if len(devices) > 1 else "")
          + (f"; CUBECL_WGPU_DEFAULT_DEVICE={report['cubecl_wgpu_default_device']}"
             if report.get("cubecl_wgpu_default_device") else ""))
    t = report["tests"]
    print(f"wgpu tests on the GPU: {t['status']}, {t['passed']} passed, {t['failed']} failed"
          + (f" ({t['result']})" if t.get("result") else ""))
    for line in t.get("panics", []):
        print(f"  {line}")
    p = report["paper_run"]
    s = p.get("summary")
    line = f"paper run (configs/mnist.toml on wgpu): {p['status']}, {p.get('epochs_done', 0)} epochs"
    if s:
        line += (f"; test accuracy {s['test_accuracy_mean_field_pct']:.2f}% mean-field, "
                 f"{s['test_accuracy_mean_network_pct']:.2f}% mean network "
                 f"(flex seed 0: {FLEX_SEED0['test_accuracy_mean_field_pct']:.2f} / "
                 f"{FLEX_SEED0['test_accuracy_mean_network_pct']:.2f}); device {s.get('device')}")
    elif "last_test_accuracy_pct" in p:
        line += f"; last test accuracy {p['last_test_accuracy_pct']:.2f}% (no summary.json)"
    print(line)
    if "train_seconds_total" in p:
        print(f"  training {p['train_seconds_total']:.1f} s ({p['train_seconds_median_epoch']:.3f} s/epoch "
              f"median, first epoch {p['train_seconds_first_epoch']:.2f} s), wall "
              f"{fmt(p.get('wall_seconds'), '.1f')} s with evaluation and checkpoints; GPU "
              + (f"{p['gpu']['util_mean_pct']:.0f}% busy on average, {p['gpu']['memory_max_mib']:.0f} MiB"
                 if p.get("gpu") else "load not sampled"))
    if p.get("against_flex"):
        print("  against the flex runs (3 seeds, mean ± sd; diff in sds):")
        for key, v in p["against_flex"].items():
            print(f"    {key:32} wgpu {v['wgpu']:6.2f}   flex {v['flex_mean']:6.2f} ± {v['flex_sd']:.2f}"
                  f"   {fmt(v['diff_in_sd'], '+.1f')}")
    print()
    header = (f"{'shape':6} {'sizes':17} {'side':14} {'img/s':>10} {'s/epoch':>9} "
              f"{'x eager':>8} {'GPU busy':>9} {'status':>16}")
    print(header)
    print("-" * len(header))
    for r in report["speed"]:
        gpu = r.get("gpu")
        print(f"{r['shape']:6} {'-'.join(map(str, r['sizes'])):17} {r['side']:14} "
              f"{fmt(r.get('images_per_second'), '10.0f', '-'):>10} "
              f"{fmt(r.get('epoch_seconds_median'), '9.4f', '-'):>9} "
              f"{fmt(r.get('vs_torch_eager'), '8.2f', '-'):>8} "
              f"{(format(gpu['util_mean_pct'], '8.0f') + '%') if gpu else '-':>9} {r['status']:>16}")
    print("\nimg/s: training images per second at the median timed epoch (after one warm-up);"
          " x eager: against PyTorch CUDA eager on the same shape; GPU busy: nvidia-smi's"
          " utilisation averaged over the whole step (warm-up, compilation and evaluation included)")


def main(argv):
    if len(argv) == 3 and argv[1] == "vulkan":
        return cmd_vulkan(argv[2])
    if len(argv) == 4 and argv[1] == "table":
        return cmd_table(argv[2], argv[3])
    if len(argv) == 3 and argv[1] == "show":
        report = read_json(argv[2])
        if report is None:
            print(f"cannot read {argv[2]}", file=sys.stderr)
            return 1
        show(report)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
