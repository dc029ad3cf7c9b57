"""anvil nodes as real providers: ``python -m providers.anvil --port P ...``.

The binary comes from the npm package ``@foundry-rs/anvil-linux-amd64`` (``make`` runs
``npm install --ignore-scripts`` at the repository root; see ``package.json``), found by
:func:`find_anvil`. This wrapper follows the process contract of every child of a run:
it prints ``ready http://127.0.0.1:PORT`` once anvil answers, exits 0 on SIGTERM or
SIGINT after stopping anvil, and prints one line and exits 2 on bad arguments.

One chain for a fleet: anvil nodes started with the same ``--timestamp`` (and the
default mnemonic and chain id) mine identical blocks when every block carries the same
timestamp. anvil's own interval mining (``--block-time``) stamps a block from its node's
start and the moment its timer fires, so two nodes started apart, or one whose timer
fired late on a busy machine, mine different hashes (measured with anvil 1.7.1: block
1 differed between two nodes while a CPU hog ran). So anvil runs with ``--no-mining``
and this wrapper mines: block n is due at ``timestamp + n * block_time`` on the wall
clock and is mined (``evm_mine``) with exactly that timestamp, a late one as soon as
the wrapper runs again (:func:`due_blocks`). A starved node lags; it never forks.

Memory and files: anvil keeps every block in memory; ``--prune-history`` keeps only
the latest states, and mining one block per block time bounds how fast it grows. anvil
runs with ``HOME`` set to a temporary folder this wrapper deletes on exit, so nothing it
might persist (``~/.foundry``) reaches the user's home.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

from providers.chain import DEFAULT_CHAIN_ID

__all__ = ["ANVIL_PACKAGE", "anvil_argv", "due_blocks", "find_anvil", "main"]

_PROG = "providers.anvil"
#: The npm package that ships the binary, and where the binary sits inside it.
ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
_BIN_IN_PACKAGE = Path("bin") / "anvil"
_REPO = Path(__file__).resolve().parent.parent
#: anvil takes about 0.2 s to listen here; allow for a loaded machine.
READY_TIMEOUT_S = 20.0


def find_anvil() -> Path | None:
    """The anvil binary: ``$BATTLE_ANVIL``, the repository's node_modules, or ``PATH``."""
    env = os.environ.get("BATTLE_ANVIL")
    if env:
        return Path(env) if os.access(env, os.X_OK) else None
    local = _REPO / "node_modules" / ANVIL_PACKAGE / _BIN_IN_PACKAGE
    if os.access(local, os.X_OK):
        return local
    found = shutil.which("anvil")
    return Path(found) if found else None


def anvil_argv(
    binary: Path | str,
    port: int,
    *,
    timestamp: int,
    block_time_ms: int = 1000,
    chain_id: int = DEFAULT_CHAIN_ID,
) -> list[str]:
    """The command line of one anvil node of a fleet (loopback only, bounded memory).

    Blocks are mined by :func:`main`, not by anvil (``--no-mining``): see the module's
    docstring.

    Raises:
        ValueError: ``block_time_ms`` is not a whole number of seconds: a block's
            timestamp is in seconds, so block n is stamped ``timestamp + n * block_time``
            only with whole seconds.
    """
    if block_time_ms <= 0 or block_time_ms % 1000:
        raise ValueError(f"block_time_ms must be a positive multiple of 1000, got {block_time_ms}")
    return [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--timestamp",
        str(timestamp),
        "--no-mining",
        "--chain-id",
        str(chain_id),
        "--prune-history",
        "--silent",
    ]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{_PROG}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be in 1..65535, got {value}")
    return value


def _dying_with_parent(cmd: list[str]) -> list[str]:
    """`cmd` run so that anvil gets SIGTERM when this process dies: through
    util-linux's `setpriv --pdeathsig` (no `preexec_fn`, which is unsafe in a process
    with threads), or, where setpriv is missing, a `python -c` that sets
    PR_SET_PDEATHSIG and execs it (same pid)."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", *cmd]
    code = (
        "import ctypes, os, signal, sys; "
        "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM); "
        "os.execvp(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *cmd]


def due_blocks(now_s: float, timestamp: int, block_time_s: int, mined: int) -> list[int]:
    """The timestamps of the blocks due by ``now_s`` (wall clock, seconds) after the
    ``mined`` first ones: block n is due at, and stamped, ``timestamp + n *
    block_time_s``. Every node of a fleet mines the same list, however late it runs."""
    due = int((now_s - timestamp) // block_time_s)
    return [timestamp + n * block_time_s for n in range(mined + 1, due + 1)]


def _rpc(port: int, method: str, params: list) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5.0) as resp:
            return resp.status == 200 and "error" not in json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _answers(port: int) -> bool:
    return _rpc(port, "eth_chainId", [])


def main(argv: list[str] | None = None) -> int:
    """Run one anvil node until SIGTERM/SIGINT; returns the exit status."""
    p = _Parser(prog=_PROG, description="One anvil node as a provider on 127.0.0.1.")
    p.add_argument("--port", type=_port, required=True)
    p.add_argument("--name", default="anvil")
    p.add_argument("--timestamp", type=_positive, required=True, help="genesis time, seconds")
    p.add_argument("--block-time-ms", type=_positive, default=1000)
    p.add_argument("--chain-id", type=_positive, default=DEFAULT_CHAIN_ID)
    args = p.parse_args(argv)
    if args.block_time_ms % 1000:
        p.error(f"argument --block-time-ms: must be a multiple of 1000, got {args.block_time_ms}")
    binary = find_anvil()
    if binary is None:
        p.exit(2, f"{_PROG}: error: anvil not found (run `make` to npm-install {ANVIL_PACKAGE})\n")

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    home = tempfile.mkdtemp(prefix="battle-anvil-")
    env = {**os.environ, "HOME": home}
    cmd = anvil_argv(
        binary,
        args.port,
        timestamp=args.timestamp,
        block_time_ms=args.block_time_ms,
        chain_id=args.chain_id,
    )
    proc = subprocess.Popen(_dying_with_parent(cmd), env=env, cwd=home, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(args.port):
            if stop:
                return 0
            if proc.poll() is not None:
                print(f"{_PROG}: anvil exited with {proc.returncode}", file=sys.stderr, flush=True)
                return 1
            if time.monotonic() > deadline:
                print(f"{_PROG}: anvil not ready within {READY_TIMEOUT_S:g} s", file=sys.stderr)
                return 1
            time.sleep(0.05)
        print(f"ready http://127.0.0.1:{args.port}", flush=True)
        block_time_s, mined = args.block_time_ms // 1000, 0
        while not stop:
            if proc.poll() is not None:
                print(f"{_PROG}: anvil exited with {proc.returncode}", file=sys.stderr, flush=True)
                return 1
            for stamp in due_blocks(time.time(), args.timestamp, block_time_s, mined):
                if stop or not _rpc(args.port, "evm_mine", [stamp]):
                    break  # a failed mine is tried again on the next turn: same block
                mined += 1
            time.sleep(0.05)
        print(f"{_PROG}: {args.name} stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
