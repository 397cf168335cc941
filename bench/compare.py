#!/usr/bin/env python3
"""Run the Isocore node benchmark and the Hypercore harness on this machine, one after the
other in one go, and print both figures side by side with their ratio.

    python3 bench/compare.py [path/to/hypercore-harness]

The harness defaults to ../shared/bench/hypercore (Hypercore 11.37.1, RocksDB, loopback TCP);
it is copied to a temporary directory and installed there with `npm ci`.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit("no JSON line in output:\n" + text[-2000:])


def isocore():
    out = subprocess.run(["cargo", "bench", "-q", "-p", "isocore", "--bench", "node"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return last_json(out.stdout)


def hypercore(harness):
    work = tempfile.mkdtemp(prefix="isocore-hypercore-")
    try:
        for name in ("bench.js", "package.json", "package-lock.json"):
            shutil.copy(os.path.join(harness, name), work)
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run(["node", "bench.js"], cwd=work, capture_output=True, text=True, check=True)
        return last_json(out.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    harness = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "bench", "hypercore")
    ours = isocore()
    theirs = hypercore(harness)
    live = theirs["live_latency"]["to_reader_download_event"]
    rows = [
        # name, isocore, hypercore, higher is better
        ("append 64 B, one per call (entries/s), durable", ours["append_single_durable_per_s"],
         theirs["append_small"]["batch1"]["entries_per_s"], True),
        ("append 64 B, one per call (entries/s), no fsync", ours["append_single_nofsync_per_s"],
         theirs["append_small"]["batch1"]["entries_per_s"], True),
        ("append 64 B, batches of 1000 (entries/s), durable", ours["append_batch1000_per_s"],
         theirs["append_small"]["batch1000"]["entries_per_s"], True),
        ("append 64 B, batches of 1000 (entries/s), no fsync", ours["append_batch1000_nofsync_per_s"],
         theirs["append_small"]["batch1000"]["entries_per_s"], True),
        ("append 64 KiB, one per call (MB/s)", ours["append_64k_mb_per_s"],
         theirs["append_large"]["batch1"]["mb_per_s"], True),
        ("download 100k x 64 B over TCP (entries/s)", ours["download_small_entries_per_s"],
         theirs["replicate_small"]["entries_per_s"], True),
        ("download 2000 x 64 KiB over TCP (MB/s)", ours["download_large_mb_per_s"],
         theirs["replicate_large"]["mb_per_s"], True),
        ("live append -> reader p50 (us)", ours["live_call_to_reader_p50_us"], live["p50_us"], False),
        ("live append -> reader p99 (us)", ours["live_call_to_reader_p99_us"], live["p99_us"], False),
        # Hypercore does not wait for the disk before it publishes; these start after our fsync.
        ("live, written -> reader p50 (us)", ours["live_commit_to_reader_p50_us"], live["p50_us"], False),
        ("live, written -> reader p99 (us)", ours["live_commit_to_reader_p99_us"], live["p99_us"], False),
        ("peak RSS, whole process (MB)", ours["peak_rss_mb"], theirs["peak_rss_mb"], False),
        ("disk, 100k x 64 B writer (bytes)", ours["disk_bytes_small_writer"],
         theirs["replicate_small"].get("writer_disk_bytes_after_close", 0), False),
        ("disk, 2000 x 64 KiB reader (bytes)", ours["disk_bytes_large_reader"],
         theirs["replicate_large"].get("reader_disk_bytes_after_close", 0), False),
    ]
    print(f"{'workload':<50} {'isocore':>14} {'hypercore':>14} {'advantage':>10}")
    table = []
    for name, a, b, higher in rows:
        adv = (a / b if higher else b / a) if a and b else float("nan")
        print(f"{name:<50} {a:>14,.1f} {b:>14,.1f} {adv:>9.2f}x")
        table.append({"workload": name, "isocore": a, "hypercore": b, "advantage": round(adv, 3)})
    # Where the 64 KiB download's time goes: CPU seconds per second, ours alone.
    print(f"isocore 64 KiB download: both nodes {ours['download_large_cores_busy']:.2f} cores, "
          f"the reader {ours['download_large_reader_cores_busy']:.2f}, "
          f"the whole machine {ours['download_large_machine_busy'] * 100:.0f} % busy")
    print(json.dumps({"rows": table}))


if __name__ == "__main__":
    main()
