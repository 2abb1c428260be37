"""Build the fake libnvidia-ml.so.1 and write its scenario files."""

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(os.path.dirname(HERE), ".build")
LIB = os.path.join(BUILD, "libnvidia-ml.so.1")
OLD_BUILD = os.path.join(BUILD, "old-driver")


def build(old_driver=False):
    """Compile the fake with cc (once; again when the source is newer). Returns its folder. With
    `old_driver`, the library exports no _v2/_v3 entry points, as drivers before them did."""
    folder = OLD_BUILD if old_driver else BUILD
    lib = os.path.join(folder, "libnvidia-ml.so.1")
    src = os.path.join(HERE, "fake_nvml.c")
    if not os.path.exists(lib) or os.path.getmtime(lib) < os.path.getmtime(src):
        os.makedirs(folder, exist_ok=True)
        subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-Wl,-soname,libnvidia-ml.so.1",
                        *(["-DOLD_DRIVER"] if old_driver else []), "-o", lib + ".tmp", src, "-lpthread"], check=True)
        os.replace(lib + ".tmp", lib)
    return folder


def gpu(index, **over):
    """A plausible H100 as scenario keys; `over` replaces or removes (value None) keys."""
    g = {
        "name": "NVIDIA H100 80GB HBM3", "uuid": f"GPU-00000000-0000-0000-0000-{index:012d}",
        "pci_bus_id": f"00000000:{0x18 + index:02X}:00.0", "vbios": "96.00.99.00.01", "serial": f"165322{index:07d}",
        "minor": index,
        "mig_mode": 0, "util_gpu": 45, "util_memory": 20, "util_encoder": 0, "util_decoder": 3,
        "memory_total": 85520809984, "memory_used": 8589934592, "memory_reserved": 566231040,
        "temperature": 40, "memory_temperature": 44, "power_mw": 150000, "power_limit_mw": 700000,
        "enforced_power_limit_mw": 700000, "energy_mj": 123456789, "clock_graphics": 1755, "clock_sm": 1755,
        "clock_memory": 2619, "clock_video": 1545, "max_clock_graphics": 1980, "max_clock_sm": 1980,
        "max_clock_memory": 2619, "max_clock_video": 1545, "pstate": 0, "clock_events": 0x4,
        "ecc_volatile_corrected": 2, "ecc_volatile_uncorrected": 0, "ecc_aggregate_corrected": 10,
        "ecc_aggregate_uncorrected": 0, "retired_pages_sbe": 0, "retired_pages_dbe": 0,
        "retired_pages_pending": 0, "remapped_corrected": 1, "remapped_uncorrected": 0, "remap_pending": 0,
        "remap_failure": 0, "pcie_gen": 5, "pcie_width": 16, "pcie_replays": 0, "processes": 2,
    }
    for k, v in over.items():
        if v is None:
            g.pop(k, None)
        else:
            g[k] = v
    return g


def write(path, gpus, events=(), **top):
    """Write a scenario: `gpus` is a list of gpu() dicts, `events` (gpu, xid) pairs."""
    lines = [f"{k}={v}" for k, v in {"driver_version": "550.54.15", "cuda_driver_version": 12040,
                                     **top}.items()]
    lines.append(f"gpu_count={len(gpus)}")
    for i, g in enumerate(gpus):
        lines += [f"gpu.{i}.{k}={v}" for k, v in g.items()]
    lines += [f"event.{n}={g}:{x}" for n, (g, x) in enumerate(events)]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


GIB = 1 << 30


def mig(gpu_dict, instances, generation=0):
    """`gpu_dict` in MIG mode with `instances`: a list of (slot, profile, gi, ci, used bytes) in its 7
    slots; the slots left out are empty. Memory per instance follows the profile (10gb: 10 GiB). Each
    `generation` of instances has UUIDs of its own, as instances created again have, and no two GPUs
    share one."""
    g = dict(gpu_dict, mig_mode=1, mig_max=7)
    for slot, profile, gi, ci, used in instances:
        g.update({f"mig.{slot}.uuid": f"MIG-{generation:04d}{slot:04d}-{gi:04d}-4{ci:03d}-8000-{g['uuid'][-12:]}",
                  f"mig.{slot}.name": f"{g['name']} MIG {profile}", f"mig.{slot}.gi": gi, f"mig.{slot}.ci": ci,
                  f"mig.{slot}.memory_total": int(profile.split(".")[1].removesuffix("gb")) * GIB,
                  f"mig.{slot}.memory_used": used})
    return g


def seven_1g_10gb(index=0, **over):
    """An H100 80GB split into seven 1g.10gb instances (GPU instances 7 to 13), 1 GiB used in each
    but the first, which uses 512 MiB."""
    used = [512 << 20] + [GIB] * 6
    return mig(gpu(index, **over), [(slot, "1g.10gb", 7 + slot, 0, used[slot]) for slot in range(7)])


def running(gpu_dict, processes):
    """`gpu_dict` running `processes`: dicts with pid and any of used (bytes, or "na"), gi, ci and sm
    (percent of SM time in the newest sample)."""
    g = {k: v for k, v in gpu_dict.items() if not k.startswith("proc.")}
    g["processes"] = len(processes)
    for i, p in enumerate(processes):
        g.update({f"proc.{i}.{k}": v for k, v in p.items()})
    return g


# GPM metric id -> what the fake reports (percent, or MiB/s for PCIe 20/21 and NVLink 60/61).
GPM_VALUES = {1: 60.0, 2: 55.5, 3: 30.25, 5: 42.0, 10: 70.0, 11: 0.5, 12: 12.0, 13: 25.0, 20: 100.0, 21: 200.0,
              60: 1024.0, 61: 2048.0}


def with_gpm(gpu_dict, values=GPM_VALUES, slots=()):
    """`gpu_dict` with GPM: `values` for the whole GPU, or, for each MIG slot in `slots`, for that
    instance (scaled by its slot + 1, so instances differ)."""
    g = dict(gpu_dict, gpm=1)
    if not slots:
        g.update({f"gpm.{m}": v for m, v in values.items()})
    for slot in slots:
        g.update({f"mig.{slot}.gpm.{m}": v * (slot + 1) / 8 for m, v in values.items()})
    return g
