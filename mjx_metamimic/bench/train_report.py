"""``bench train``'s results: per-config summary (best rounds, rates, same-run ratios, time
shares), the engines' ratios, and the tables it prints."""

import statistics

from rich.table import Table

from mjx_metamimic.training.config import TrainConfig

VARIANTS = ("one-jit", "split", "host")
COMPONENTS = ("physics", "rendering", "replay", "learning")


def summarise(config: TrainConfig, rounds: dict, compile_s: dict, prefill_chunks: int) -> dict:
    """Best round per measurement, rates, same-run ratios and time shares."""
    best = {n: min(rs, key=lambda m: m["seconds_per_chunk"]) for n, rs in rounds.items()}
    variants = {}
    for name in VARIANTS:
        m = best[name]
        variants[name] = {
            **m,
            "env_steps_per_s": m["env_steps_per_chunk"] / m["seconds_per_chunk"],
            "updates_per_s": m["updates_per_chunk"] / m["seconds_per_chunk"],
        }
    fused = variants["one-jit"]["seconds_per_chunk"]
    component_s = {n: best[n]["seconds_per_chunk"] if n in best else 0.0 for n in COMPONENTS}
    total = sum(component_s.values())
    return {
        "config": config.name,
        "impl": config.env.physics_impl,
        "num_envs": config.actors.num_envs,
        "steps_per_chunk": config.actors.steps_per_chunk,
        "updates_per_chunk": config.learner.updates_per_chunk,
        "batch_size": config.learner.batch_size,
        "image_size": config.image_size,
        "replay_capacity": config.replay.capacity,
        "prefill_chunks": prefill_chunks,
        "variants": variants,
        "speedup_of_one_jit": {
            name: variants[name]["seconds_per_chunk"] / fused for name in ("split", "host")
        },
        # Ratios within each round pair measurements taken seconds apart: steadier than
        # best rounds when the machine's load drifts.
        "median_round_speedup_of_one_jit": {
            name: statistics.median(
                other["seconds_per_chunk"] / own["seconds_per_chunk"]
                for own, other in zip(rounds["one-jit"], rounds[name], strict=True)
            )
            for name in ("split", "host")
        },
        "components": {
            n: {"seconds_per_chunk": s, "share": s / total} for n, s in component_s.items()
        },
        "components_sum_over_one_jit": total / fused,
        "rounds": rounds,
        "compile_and_first_call_s": compile_s,
    }


def variants_table(results: list[dict]) -> Table:
    """Rich table of each config's variants."""
    table = Table(title="training loop: the same chunk three ways (best round)")
    for col in ("config", "E x K / U", "variant", "s/chunk", "env steps/s", "updates/s",
                "one-jit speedup", "median per round"):
        table.add_column(col, justify="left" if col in ("config", "variant") else "right")
    for r in results:
        sizes = f"{r['num_envs']} x {r['steps_per_chunk']} / {r['updates_per_chunk']}"
        for name, v in r["variants"].items():
            speedups = (r["speedup_of_one_jit"], r["median_round_speedup_of_one_jit"])
            table.add_row(
                label(r), sizes, name, f"{v['seconds_per_chunk']:.3f}",
                f"{v['env_steps_per_s']:,.0f}", f"{v['updates_per_s']:,.1f}",
                *(f"{x[name]:.2f}x" if name in x else "-" for x in speedups),
            )
    return table


def shares_table(results: list[dict]) -> Table:
    """Rich table of each config's component times and shares."""
    table = Table(title="time per chunk by component (each jitted alone)")
    table.add_column("config")
    for name in COMPONENTS:
        table.add_column(name, justify="right")
    table.add_column("sum / one-jit", justify="right")
    for r in results:
        cells = [
            f"{c['seconds_per_chunk']:.3f} s ({c['share']:.0%})" for c in r["components"].values()
        ]
        table.add_row(label(r), *cells, f"{r['components_sum_over_one_jit']:.2f}")
    return table


def label(result: dict) -> str:
    """``config (physics engine)``."""
    return f"{result['config']} ({result['impl']})"


def engine_ratios(results: list[dict]) -> list[dict]:
    """Per config, each engine's one-jit env steps/s and updates/s over the first engine's."""
    by_config: dict[str, list[dict]] = {}
    for result in results:
        by_config.setdefault(result["config"], []).append(result)
    ratios = []
    for name, (base, *others) in by_config.items():
        a = base["variants"]["one-jit"]
        for other in others:
            b = other["variants"]["one-jit"]
            ratios.append({
                "config": name,
                "baseline_impl": base["impl"],
                "impl": other["impl"],
                "env_steps_per_s_ratio": b["env_steps_per_s"] / a["env_steps_per_s"],
                "updates_per_s_ratio": b["updates_per_s"] / a["updates_per_s"],
                "compile_s": (
                    base["compile_and_first_call_s"]["one-jit"],
                    other["compile_and_first_call_s"]["one-jit"],
                ),
            })
    return ratios
