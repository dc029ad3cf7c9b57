"""`python -m scenarios.worker` / `python -m loadgen` as processes against a mock provider."""

from __future__ import annotations

import csv
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from scenarios.processes import free_ports

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
SEED = 5
BLOCK_MS = 200


def free_port() -> int:
    # Reserved (TIME_WAIT), not just seen free: no other test's port-0 bind takes it
    # before the child binds it.
    return free_ports(1)[0]


@pytest.fixture(scope="module")
def provider():
    port = free_port()
    genesis = time.time_ns() - 60 * 1_000_000_000
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "providers.mock",
            "--port",
            str(port),
            "--seed",
            str(SEED),
            "--genesis-ns",
            str(genesis),
            "--block-time-ms",
            str(BLOCK_MS),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.post(
                    f"http://127.0.0.1:{port}/",
                    json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                    timeout=1,
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mock provider did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/", genesis
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker(
    run_dir: Path,
    target: str,
    genesis: int,
    *extra: str,
    seed: int = SEED,
    module: str = "scenarios.worker",
    start: str = "",
) -> subprocess.CompletedProcess:
    """One worker held until it is set up (`--ready-fd`), as the runner starts them,
    then started 0.3 s later (or given `start` on stdin instead): however slow its
    start-up, its schedule begins on time."""
    args = [
        sys.executable,
        "-m",
        module,
        "--target",
        target,
        "--run-dir",
        str(run_dir),
        "--duration",
        "1",
        "--timeout",
        "2",
        *extra,
    ]
    if module == "scenarios.worker":
        args += [
            "--chain-seed",
            str(seed),
            "--genesis-ns",
            str(genesis),
            "--block-time-ms",
            str(BLOCK_MS),
        ]
    r, w = os.pipe()
    proc = subprocess.Popen(
        [*args, "--ready-fd", str(w)],
        cwd=ROOT,
        pass_fds=(w,),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(w)
    try:
        readable, _, _ = select.select([r], [], [], 60)
        # Nothing to read but EOF: it exited first (bad arguments).
        ready = bool(readable) and os.read(r, 64) != b""
        line = (start or f"{time.time_ns() + 300_000_000}\n") if ready else None
        out, err = proc.communicate(line, timeout=60)
    finally:
        os.close(r)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


MIX = "eth_blockNumber=2,eth_getBlockByNumber=1,eth_getBlockByNumber:historical=1,eth_getBalance=1"


def test_a_worker_with_the_truth_validates_every_answer_and_records_its_summary(provider, tmp_path):
    target, genesis = provider
    done = worker(tmp_path, target, genesis, "--rate", "200", "--mix", MIX, "--batch", "0.1:3=1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "quiet when not a terminal"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    requests = rows(tmp_path / "client" / "requests.w0.csv")
    assert len(requests) == summary["planned"] == 200
    assert {r["outcome"] for r in requests} == {"ok"}, {r["error"] for r in requests}
    heads = [int(r["result_block"]) for r in requests if r["method"] == "eth_blockNumber"]
    assert heads and all(h > 0 for h in heads)
    stopped = [r for r in rows(tmp_path / "events" / "lifecycle.w0.csv") if r["event"] == "stopped"]
    detail = json.loads(stopped[0]["detail"])
    assert (detail["planned"], detail["not_sent"]) == (200, 0)


def test_a_router_serving_another_chain_is_caught_as_invalid(provider, tmp_path):
    target, genesis = provider
    done = worker(
        tmp_path, target, genesis, "--rate", "50", "--mix", "eth_getBlockByNumber=1", seed=SEED + 1
    )
    assert done.returncode == 0, done.stderr
    requests = rows(tmp_path / "client" / "requests.w0.csv")
    assert {r["outcome"] for r in requests} == {"invalid"}
    assert all("not the true hash" in r["error"] for r in requests)


EVERY_METHOD = (
    "eth_blockNumber=1,eth_chainId=1,eth_gasPrice=1,eth_getBalance=2,eth_getBlockByNumber=1,"
    "eth_getBlockByNumber:historical=1,eth_call=2,eth_getLogs=1,eth_getTransactionReceipt=1"
)


def test_every_method_of_the_mix_answered_by_the_mock_is_true_alone_and_in_batches(
    provider, tmp_path
):
    target, genesis = provider
    done = worker(
        tmp_path, target, genesis, "--rate", "200", "--mix", EVERY_METHOD, "--batch", "0.2:4=1"
    )
    assert done.returncode == 0, done.stderr
    requests = rows(tmp_path / "client" / "requests.w0.csv")
    assert len(requests) == 200 and any(r["method"] == "batch" for r in requests)
    assert {r["outcome"] for r in requests} == {"ok"}, {r["error"] for r in requests}


def test_balances_and_the_chain_id_of_another_chain_are_caught_as_invalid(provider, tmp_path):
    target, genesis = provider
    mix = "eth_getBalance=1,eth_chainId=1"
    done = worker(
        tmp_path, target, genesis, "--rate", "50", "--mix", mix, "--chain-id", "1", seed=SEED + 1
    )
    assert done.returncode == 0, done.stderr
    requests = rows(tmp_path / "client" / "requests.w0.csv")
    errors = {r["method"]: r["error"] for r in requests}
    assert {r["outcome"] for r in requests} == {"invalid"}
    assert errors["eth_chainId"] == "chain id must be 0x1, got 0x7a69"
    assert errors["eth_getBalance"].startswith("balance of 0x")


def test_workers_share_the_rate_and_each_writes_its_own_shard(provider, tmp_path):
    target, _ = provider
    procs = []
    t0 = time.time_ns() + 500_000_000
    for i in range(2):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "loadgen",
                    "--target",
                    target,
                    "--run-dir",
                    str(tmp_path),
                    "--t0-ns",
                    str(t0),
                    "--duration",
                    "1",
                    "--rate",
                    "100",
                    "--worker",
                    str(i),
                    "--workers",
                    "2",
                    "--mix",
                    "eth_chainId=1",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    counts = [len(rows(tmp_path / "client" / f"requests.w{i}.csv")) for i in range(2)]
    assert counts == [50, 50]


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--rate", "0"], "rate must be > 0"),
        (["--arrival", "zigzag:3"], "arrival must be one of"),
        (["--rate", "10", "--mix", "eth_nope=1"], "mix method must be one of"),
        (["--rate", "10", "--worker", "3", "--workers", "2"], "worker must be in [0, 2)"),
        (["--rate", "10", "--ws-subscriptions", "pending=1"], "ws subscription kind"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_naming_the_field(tmp_path, extra, message):
    done = worker(tmp_path, "http://127.0.0.1:9/", 0, *extra, module="loadgen")
    assert done.returncode == 2
    assert message in done.stderr.strip().splitlines()[-1]


def test_a_held_worker_given_no_start_exits_2_naming_what_it_got(tmp_path):
    done = worker(tmp_path, "http://127.0.0.1:9/", 0, "--rate", "10", module="loadgen",
                  start="soon\n")  # fmt: skip
    assert done.returncode == 2
    assert "expected the start (epoch ns) on stdin, got 'soon\\n'" in done.stderr


def test_a_worker_takes_its_start_from_one_of_t0_and_the_gate_not_both(tmp_path):
    both = [sys.executable, "-m", "loadgen", "--target", "http://127.0.0.1:9/",
            "--run-dir", str(tmp_path), "--duration", "1", "--rate", "1",
            "--t0-ns", "1", "--ready-fd", "9"]  # fmt: skip
    done = subprocess.run(both, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


def test_battle_load_runs_workers_sharing_the_rate_and_judges_the_run(provider, tmp_path):
    target, genesis = provider
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from scenarios.cli import main; main()",
            "load",
            "--target",
            target,
            "--workers",
            "2",
            "--chain-seed",
            str(SEED),
            "--genesis-ns",
            str(genesis),
            "--block-time-ms",
            str(BLOCK_MS),
            "--runs-dir",
            str(tmp_path),
            "--slo",
            "success_rate >= 0.99",
            "--duration",
            "1",
            "--rate",
            "100",
            "--mix",
            "eth_blockNumber=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: PASSED" in done.stdout
    (run,) = tmp_path.iterdir()
    counts = [len(rows(run / "client" / f"requests.w{i}.csv")) for i in range(2)]
    assert counts == [50, 50]


def test_battle_load_rejects_bad_worker_arguments_before_starting_anything(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from scenarios.cli import main; main()",
            "load",
            "--target",
            "http://127.0.0.1:9/",
            "--runs-dir",
            str(tmp_path),
            "--duration",
            "1",
            "--arrival",
            "ramp:5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "needs 2 comma-separated numbers" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_ws_subscriptions_through_the_worker_record_heads_logs_and_sessions(provider, tmp_path):
    target, genesis = provider
    done = worker(
        tmp_path,
        target,
        genesis,
        "--rate",
        "20",
        "--mix",
        "eth_blockNumber=1",
        "--ws-subscriptions",
        "newHeads=1,logs=1",
        "--ws-call-interval",
        "0.25",
    )
    assert done.returncode == 0, done.stderr
    sessions = rows(tmp_path / "client" / "ws_sessions.w0.csv")
    by_client: dict[str, list[str]] = {}
    for s in sessions:
        by_client.setdefault(s["connection"], []).append(s["event"])
    assert by_client == {
        "w0-newHeads-0": ["connect", "subscribe", "close"],
        "w0-logs-0": ["connect", "subscribe", "close"],
    }
    notes = rows(tmp_path / "client" / "ws_notifications.w0.csv")
    heads = [int(n["block_number"]) for n in notes if n["kind"] == "newHeads"]
    # 1 s of 200 ms blocks: about 5 heads, consecutive.
    assert len(heads) >= 3 and heads == list(range(heads[0], heads[0] + len(heads)))
    assert all(int(n["t_produced"]) <= int(n["t_received"]) for n in notes if n["t_produced"])
    assert any(n["kind"] == "logs" for n in notes)
    ws_calls = [r for r in rows(tmp_path / "client" / "requests.w0.csv") if r["transport"] == "ws"]
    assert ws_calls and {r["outcome"] for r in ws_calls} == {"ok"}


def test_battle_loads_a_target_whose_key_is_in_no_file_and_no_command_line(provider, tmp_path):
    target, _ = provider
    key = "f3" * 16
    keyed = target.rstrip("/") + f"/v3/{key}"
    cmd = [sys.executable, "-c", "from scenarios.cli import main; main()", "load",
           "--target", keyed, "--runs-dir", str(tmp_path), "--duration", "2", "--rate", "20",
           "--mix", "eth_blockNumber=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    seen = []
    try:
        # The workers' command lines while they run (they live about 3 s).
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "loadgen" in text or "args.json" in text:
                    seen.append(text)
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out + err
    assert any("args.json" in s for s in seen), "the workers ran from their argument files"
    assert not any(key in s for s in seen), "a worker's command line carried the key"
    (run,) = tmp_path.iterdir()
    for path in run.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"the key is in {path}"
    assert key not in out + err
    assert not (run / "private").exists()
