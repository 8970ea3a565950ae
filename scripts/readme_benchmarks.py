"""The README's benchmark blocks (:mod:`render_docs` renders them): each formats a file of
``results/`` that a script of ``benchmarks/`` wrote, with the command written next to it."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _verified(bench: dict, what: str) -> str:
    """The sentence saying what the benchmark checked before it reported."""
    return f" Checked before reporting: {what} ({len(bench['verified'])} comparisons)."


def bench_sim() -> str:
    bench = _load("bench-sim.json")
    best = bench["sim_best_images_per_second"]
    methods = list(best)
    engines = list(best[methods[0]])
    rate = {(r["method"], r["engine"], r["batch_size"]): r for r in bench["sim"]}
    batches = sorted({r["batch_size"] for r in bench["sim"]})
    columns = [(m, e) for m in methods for e in engines]
    rows = [
        "| batch | " + " | ".join(f"`{m}`, `{e}` images/s" for m, e in columns) + " |",
        "| ---: |" + " ---: |" * len(columns),
    ]
    rows += [
        f"| {b} | "
        + " | ".join(f"{rate[m, e, b]['images_per_second']:,.0f}" for m, e in columns)
        + " |"
        for b in batches
    ]

    def ops(method):
        top = max(
            (r for r in bench["sim"] if r["method"] == method and r["engine"] == "events"),
            key=lambda r: r["images_per_second"],
        )
        return top["equivalent_synaptic_ops_per_second_per_core"] / 1e9

    summary = "; ".join(
        f"`{m}` ({bench['methods'][m]['timing']} timing) best {best[m]['events']:,.0f} images/s "
        f"with `events`, {best[m]['events'] / best[m]['torch']:.1f} × `torch`, "
        f"{ops(m):.1f} G equivalent synaptic operations per second per core"
        for m in methods
    )
    batch1 = bench["sim_batch1_images_per_second"]["paper"]
    return (
        "\n".join(rows)
        + f"\n\nSimulator at T = {bench['time_steps']} on {bench['machine']['cpus']} CPU cores "
        + f"({bench['threads']} threads), best of {bench['repeats']}: {summary} (target "
        + f"{bench['target_images_per_second']:,} images/s for both). Equivalent operations: "
        + "the event-driven count of synaptic operations per image times images/s, the work a "
        + "chip driven by spikes would do at that rate (the engines compute dense products or "
        + "the two-phase timings' closed form instead). At batch 1, as the paper's Loihi chip "
        + f"ran ({bench['paper_loihi_images_per_second']:.0f} images/s), the paper's network "
        + f"did {batch1['events']:,.0f} images/s with `events`. In the same run the Lava graph "
        + f"did {bench['lava_graph']['images_per_second']:.0f} images/s (batch "
        + f"{bench['lava_graph']['batch_size']}) and an exact 10,000 × 60,000 search took "
        + f"{bench['search_10000x60000_seconds']:.1f} s."
        + _verified(
            bench,
            "every engine's embeddings at every batch size, and the Lava graph's, equal the "
            "simulator's bit for bit; the exact search's top 3 equal a float64 brute force",
        )
        + " From `results/bench-sim.json`, produced by `python benchmarks/sim_throughput.py`."
    )


def bench_web() -> str:
    bench = _load("bench-web.json")
    sim = bench["simulation"]
    rows = [
        "| search | requests | median | p90 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in (("by_test_id", "by test image number"), ("by_upload", "by uploaded PNG")):
        r = bench[key]
        rows.append(
            f"| {label} | {r['requests']} | {r['median_ms']:.0f} ms | {r['p90_ms']:.0f} ms | "
            f"{r['max_ms']:.0f} ms |"
        )
    return (
        "\n".join(rows)
        + "\n\nThrough HTTP on 127.0.0.1, one request at a time, the whole JSON answer read "
        + f"(median {bench['answer_bytes_median'] / 1000:.0f} kB: both columns, the input, the "
        + f"rasters' spikes); {bench['corpus']:,} indexed images, T = {sim['time_steps']}, "
        + f"`{sim['timing']}` timing, {bench['machine']['cpus']} CPU cores; target: a median of "
        + f"{bench['target_median_ms']} ms. From `results/bench-web.json`, produced by "
        + "`python benchmarks/web_latency.py`."
    )


def bench_methods() -> str:
    bench = _load("bench-methods.json")
    rows = [
        "| method | timing | `events` images/s | `torch` images/s | spikes per image | "
        "event-driven synaptic operations per image | chip steps per image |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    methods = dict.fromkeys(r["method"] for r in bench["rows"])
    for method in methods:
        by_engine = {r["engine"]: r for r in bench["rows"] if r["method"] == method}
        row = by_engine["events"]
        rows.append(
            f"| `{method}` | `{row['timing']}` | {row['images_per_second']:,.0f} | "
            f"{by_engine['torch']['images_per_second']:,.0f} | {row['spikes_per_image']:,.0f} | "
            f"{row['event_driven_synaptic_ops_per_image'] / 1e6:.2f} M | "
            f"{row['chip_steps_per_image']} |"
        )
    return (
        "\n".join(rows)
        + f"\n\nT = {bench['time_steps']}, {bench['images']:,} test images in chunks of "
        + f"{bench['chunk_size']:,}, best of {bench['repeats']}, one run on "
        + f"{bench['machine']['cpus']} CPU cores ({bench['threads']} threads); spikes and "
        + "synaptic operations from 1,000 of the images."
        + _verified(bench, "both engines' embeddings of all the timed images equal bit for bit")
        + " From `results/bench-methods.json`, produced by "
        + "`python benchmarks/method_throughput.py`."
    )


def bench_index() -> str:
    bench = _load("bench-index.json")
    sim = bench["simulation"]
    return (
        "| what | time |\n| --- | ---: |\n"
        + f"| build an index of the {bench['corpus']:,} training images | "
        + f"{bench['build_seconds']:.1f} s ({bench['build_images_per_second']:,.0f} images/s) |\n"
        + f"| load it | {bench['load_seconds']:.2f} s |\n"
        + f"| one query, k = {bench['k']}, simulator | {bench['query_ms']['sim']:.1f} ms |\n"
        + f"| one query, k = {bench['k']}, Lava process graph built for it | "
        + f"{bench['query_ms']['lava'] / 1000:.1f} s |\n"
        + f"| one query, k = {bench['k']}, resident Lava graph | "
        + f"{bench['query_ms']['lava_resident']:.0f} ms |\n\n"
        + f"Method `{bench['method']}`, T = {sim['time_steps']}, {sim['timing']} timing, "
        + f"{sim['readout']} readout; medians over repeated single-image queries; "
        + f"{bench['machine']['cpus']} CPU cores. A graph built per query spends its time mostly "
        + "starting the runtime (a dozen processes); the resident graph (`serve --backend lava`, "
        + "`ImageIndex.resident_graph`) starts once "
        + f"({bench['resident_startup_seconds']:.1f} s) and then runs only the query's windows "
        + f"(target {bench['target_resident_ms']} ms)."
        + _verified(
            bench,
            "every query the Lava graph and the resident graph answered gets the same ids and "
            "scores from the simulator, bit for bit; the index read back answers as built",
        )
        + " From `results/bench-index.json`, produced by `python benchmarks/index_latency.py`."
    )


def bench_loihi_stream() -> str:
    bench = _load("bench-loihi-stream.json")
    rows = [
        "| timing | steps per image | one graph per image | streamed in one graph | ratio | "
        "resident graph, one query |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for timing, row in bench["timings"].items():
        rows.append(
            f"| {timing} | {row['steps_per_image']} | "
            f"{row['single_graph_seconds_per_image']:.2f} s per image | "
            f"{row['stream_images_per_second']:.2f} images/s "
            f"({row['stream_seconds'] / bench['images']:.2f} s per image) | "
            f"{row['speedup']:.1f} x | {row['resident_query_ms']:.0f} ms |"
        )
    return (
        "\n".join(rows)
        + f"\n\n`--backend loihi` on the CPU: {bench['network']}, T = {bench['time_steps']}, "
        + f"{bench['images']} test images streamed, {bench['single_images']} run one graph each; "
        + f"one run on {bench['machine']['cpus']} CPU cores. Every embedding equals the "
        + "simulator's. A graph per image pays Lava's start-up (compiling, forking its "
        + "processes) every time; streamed, the steps of Lava's Python models of Conv and "
        + "LIFReset are what is left. A resident pipelined graph answers a query after one "
        + "more window (its embedding leaves the depth in steps after its window). "
        + "From `results/bench-loihi-stream.json`, produced by "
        + "`python benchmarks/loihi_stream.py`."
    )


def bench_ann(name: str = "bench-ann.json", command: str = "") -> str:
    bench = _load(name)
    sim = bench["simulation"]
    rows = [
        "| index | faiss | build | size | best queries/s at recall@10 ≥ 0.99 | recall@10 | "
        "× exact |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    exact = bench["rows"][0]
    rows.append(
        f"| exact | none | none | {bench['exact_bytes'] / 2**20:,.0f} MiB | "
        f"{exact['qps']:,.0f} | 1.0 | 1 |"
    )
    for kind, build in bench["builds"].items():
        mine = [r for r in bench["rows"] if r["index"] == kind]
        good = [r for r in mine if r["recall"] >= bench["target"]["recall"]]
        best = max(good, key=lambda r: r["qps"]) if good else max(mine, key=lambda r: r["recall"])
        rows.append(
            f"| {kind} | `{build['factory']}` | {build['build_seconds']:,.0f} s | "
            f"{build['bytes'] / 2**20:,.0f} MiB | "
            + (
                f"{best['qps']:,.0f} ({best['knob']} {best['value']})"
                if good
                else f"not reached (best recall: {best['qps']:,.0f} at {best['knob']} "
                f"{best['value']})"
            )
            + f" | {best['recall']:.3f} | {best['speed_up']:,.1f} |"
        )
    best = bench["best_at_target_recall"]
    verdict = (
        f"met: {best['index']} at {best['speed_up']:,.1f}×"
        if bench["target_met"]
        else "not met" + (f" (best: {best['index']} at {best['speed_up']:,.1f}×)" if best else "")
    )
    source = (
        "the Fashion-MNIST images"
        if bench.get("source", "fashion-mnist") == "fashion-mnist"
        else f"`{bench['source']}`, seeded crops, shifts and flips of the 70,000 images"
    )
    peaks = bench["peak_rss_mib"]
    return (
        "\n".join(rows)
        + f"\n\n{bench['corpus']:,} embeddings of {bench['dimension']} dimensions of {source} "
        + f"(method `{bench['method']}`, T = {sim['time_steps']}, {sim['timing']}, "
        + f"{sim['readout']}; embedded and written in {bench.get('shards', 1)} shards in "
        + f"{bench['embed_seconds']:,.0f} s, {bench['embed_images_per_second']:,.0f} "
        + f"images/s, apart from the index builds), {bench['queries']:,} queries (other "
        + "seeded variants), recall on all of them; queries/s of every index on the same "
        + f"{bench['speed_queries']:,} of them, answered one at a time, a warm-up pass, the "
        + f"median of {bench['passes']} passes; a knob's value is the one the search used; "
        + f"{bench['machine']['cpus']} CPU cores, one run; peak memory of the process "
        + f"{max(v for v in peaks.values() if v) / 1024:,.1f} GiB. Target: "
        + f"recall@10 ≥ {bench['target']['recall']} at ≥ {bench['target']['speed_up']}× the "
        + f"exact index's queries/s: {verdict}. Every knob value: "
        + f"[`results/{bench['figure']}`](results/{bench['figure']}), "
        + f"`results/{name}`, produced by `python benchmarks/ann_search.py{command}`."
    )


def bench_ann_1m() -> str:
    return bench_ann("bench-ann-1m.json", " --corpus 1000000 --out results/bench-ann-1m.json")


def bench_service() -> str:
    bench = _load("bench-service.json")
    index, server = bench["index"], bench["server"]
    alone, load = bench["alone"], bench["under_load"]
    search = index["search"]
    knob, setting = next(iter(search["knobs"].items()))
    default = setting["default"]
    rows = [
        r["recall"]
        for r in _load("bench-ann-1m.json")["rows"]
        if r["knob"] == knob and r["value"] == default and r["index"] == search["index_type"]
    ]
    recall = rows[0] if rows else None
    return (
        "| clients | queries | median | p99 | queries/s |\n| ---: | ---: | ---: | ---: | ---: |\n"
        + f"| 1 | {alone['count']:,} | {alone['median_ms']:.1f} ms | {alone['p99_ms']:.1f} ms | "
        + f"{1000 / alone['mean_ms']:,.0f} |\n"
        + f"| {load['clients']} | {load['count']:,} | {load['median_ms']:.1f} ms | "
        + f"{load['p99_ms']:.1f} ms | {load['requests_per_second']:,.0f} |\n\n"
        + f"`lava-retrieval serve` (waitress, {server['threads']} threads) over "
        + f"{index['count']:,} images in {index['shards']} memory-mapped shards with "
        + f"{search['index_type']} (`{search.get('factory')}`, its default {knob} {default}"
        + (f": recall@10 {recall:.3f} in `results/bench-ann-1m.json`" if recall is not None else "")
        + "); each query a PNG "
        + "upload not in the index, decoded, embedded by the spiking network and searched "
        + f"(k = {bench['k']}, `view=hits`), through HTTP on 127.0.0.1; {bench['lost']} "
        + f"lost. The server started in {server['start_seconds']:.0f} s and peaked at "
        + f"{server['VmHWM'] / 1024:,.1f} GiB resident; {bench['machine']['cpus']} CPU cores. "
        + "From `results/bench-service.json`, produced by `python benchmarks/service_load.py`."
    )


def bench_memory() -> str:
    bench = _load("bench-memory.json")
    rows = [
        "| command | peak memory, main process | with its child processes | time |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in bench["commands"]:
        rows.append(
            f"| `{row['command']}` | {row['peak_mb'] / 1024:.2f} GB | "
            f"{row['peak_with_children_mb'] / 1024:.2f} GB | {row['seconds']:.0f} s |"
        )
    verdict = "every command within" if bench["within_budget"] else "NOT every command within"
    return (
        "\n".join(rows)
        + "\n\nPeak resident memory of the main process (the kernel's count), and of the "
        + "command with every process it starts (the sum of their proportional set sizes, "
        + f"sampled every 0.2 s), full data, {verdict} the "
        + f"{bench['budget_mb'] / 1024:.0f} GB budget; {bench['machine']['cpus']} CPU cores. "
        + "From `results/bench-memory.json`, produced by `python benchmarks/memory.py`."
    )


def bench_catalogue() -> str:
    bench = _load("bench-catalogue.json")
    add, compact = bench.get("add"), bench["compact"]
    gib = "{:.1f} GiB".format
    rows = [
        "| change, at {:,} images | time | peak memory |".format(bench["count"]),
        "| --- | ---: | ---: |",
        f"| remove {bench['changes']:,} random ids (tombstones) | "
        f"{bench['remove_seconds']:.1f} s | |",
        f"| upsert {bench['changes']:,} changed images (embedded; searched exactly beside the "
        f"HNSW index until they are 1 % of it: {bench['tail_rows']:,} rows) | "
        f"{bench['upsert_seconds']:.1f} s | |",
    ]
    if add:
        rows.append(
            f"| `index add` of `{add['source']}`: {add['added']:,} new | "
            f"{add['seconds']:.0f} s | {gib(add['peak_rss_mib'] / 1024)} |"
        )
    rows.append(
        f"| `index compact`: {compact['rows_dropped']:,} rows dropped, HNSW built again "
        f"(what every removal cost before) | {compact['seconds']:.0f} s | "
        f"{gib(compact['peak_rss_mib'] / 1024)} |"
    )
    skipped = ", ".join(f"{n:,} {k}" for k, n in (add or {}).get("skipped", {}).items())
    return (
        "\n".join(rows)
        + "\n\n"
        + f"Recall@10 at the default ef against the exact search, on {bench['queries']} new "
        + f"images: {bench['recall_before']:.4f} before, {bench['recall_after']:.4f} with the "
        + f"{bench['tombstones']:,} tombstones of the removals and upserts (a change of "
        + f"{bench['recall_change']:+.4f}), {bench['recall_compacted']:.4f} after the add and "
        + "the compaction. "
        + (
            f"The add skipped {skipped} (the removed ids' paths are no longer indexed: those "
            "images came back). "
            if add
            else ""
        )
        + "Times include loading the index and saving the new version; the add and the "
        + "compaction are the CLI commands as a user runs them, each its own process (peak "
        + f"resident memory: its `VmHWM`); {bench['machine']['cpus']} CPU cores."
        + _verified(
            bench, "no removed id is ever answered, and each changed image finds its own id first"
        )
        + " From `results/bench-catalogue.json`, produced by `python benchmarks/catalogue_ops.py`."
    )


def bench_sharded() -> str:
    bench = _load("bench-sharded.json")
    one = bench["one_process"]
    rows = [
        "| search | start | recall@10 | median | p99 | queries/s | exact: median | "
        "exact: queries/s | peak memory per actor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| one process | | | {one['approximate']['median_ms']:.1f} ms | "
        f"{one['approximate']['p99_ms']:.1f} ms | {one['approximate']['queries_per_second']:,.0f}"
        f" | {one['exact']['median_ms']:,.0f} ms | {one['exact']['queries_per_second']:.1f} | |",
    ]
    for run in bench["runs"]:
        a, e = run["approximate"], run["exact"]
        peaks = " + ".join(f"{p / 1024:.1f}" for p in run["actor_peak_mib"])
        rows.append(
            f"| {run['actors']} Ray actor{'s' * (run['actors'] > 1)} | "
            f"{run['start_seconds']:.0f} s | {run['recall']['recall_at_k']:.4f} | "
            f"{a['median_ms']:.1f} ms | {a['p99_ms']:.1f} ms | {a['queries_per_second']:,.0f} | "
            f"{e['median_ms']:,.0f} ms | {e['queries_per_second']:.1f} | {peaks} GiB |"
        )
    return (
        "\n".join(rows)
        + "\n\n"
        + f"{bench['count']:,} images in {bench['shards']} shards (`{bench['factory']}` per "
        + "group, default ef); queries are embeddings of new images searched one at a time "
        + f"(k = 10): {one['approximate']['queries']} approximate, {one['exact']['queries']} "
        + "exact; start: the actors loading their shards and building their HNSW indexes; "
        + "recall@10 of the sharded approximate search against the sharded exact one, on 200 "
        + f"of the index's own embeddings; a local Ray instance, {bench['machine']['cpus']} CPU "
        + "cores. An actor searches with one thread: the exact scan runs on every actor at "
        + "once (what more nodes speed up), while an approximate query pays Ray's round trip "
        + "to each actor (what one machine's cores cannot hide)."
        + _verified(bench, "every sharded exact answer equals one process's, bit for bit")
        + " From `results/bench-sharded.json`, produced by `python benchmarks/sharded_search.py`."
    )
