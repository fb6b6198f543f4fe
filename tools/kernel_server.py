"""Start test kernels in a blink: fork them from one process that has already imported torch.

Every notebook nbval runs needs a fresh kernel, and each spent ~4 s of CPU importing
ipykernel (with debugpy), torch, torch._dynamo (torch.optim imports it on the first step)
and matplotlib before its first cell did any work. make test starts one server that imports them once;
a kernel is a fork of it, a fresh process whose imports are already done.

    python tools/kernel_server.py serve DIR    # make test: listen on DIR/kernels.sock and
                                               # write the kernelspec DIR/kernels/stepwise-forked
    python tools/kernel_server.py launch SOCKET -f CONNECTION_FILE   # the kernelspec's argv

A kernel is forked only if its environment matches the server's in everything read at
import time (threads, CPU capability, …: every variable but the per-notebook ones below);
otherwise, or without a server, ``launch`` becomes the usual ``python -m ipykernel_launcher``.
One difference remains: the kernels of one run share the server's str hash seed.
The server ends with the shell that started it.
"""

import json
import os
import random
import signal
import socket
import sys
import threading
import time
from pathlib import Path

KERNEL_NAME = "stepwise-forked"
# Read after start-up, or set per kernel by pytest, xdist, jupyter_client and our conftest.py;
# and the shell's bookkeeping and terminal size, applied to the kernel's environment as it starts.
PER_KERNEL = ("STEPWISE_", "NBTIMES", "PYTEST_", "JPY_")
SHELL = {"SHLVL", "_", "PWD", "OLDPWD", "COLUMNS", "LINES"}
# Read from the environment the process started with (/proc/self/environ), which a fork keeps
# from the server: grading mode (helpers.checking) counts, though it is set per kernel.
AT_START = {"STEPWISE_GRADING"}
FLAGS = ["-Xfrozen_modules=off"]  # the python3 kernelspec's: the debugger sees every module's source
# nbval compares no images: a test kernel draws every figure in full but skips the inline
# backend's tight crop, a second layout pass of the whole figure (~40 % of a plot cell's time).
FIGURES = '--InlineBackend.print_figure_kwargs={"bbox_inches": None}'
# A notebook run lax (nothing compared, STEPWISE_FIGURES=none: notebooks/) draws no figure at all:
# each of its plotting cells is a cell of solutions/ too, whose strict run draws it.
NO_FIGURES = "--InlineBackend.figure_formats=[]"


def _differences(ours, theirs):
    keys = {k for k in ours.keys() | theirs.keys()
            if k in AT_START or not k.startswith(PER_KERNEL) and k not in SHELL}
    return sorted(k for k in keys if ours.get(k) != theirs.get(k))


def serve(directory):
    if sys._xoptions.get("frozen_modules") != "off":  # as the python3 kernelspec starts kernels
        os.execv(sys.executable, [sys.executable, *FLAGS, *sys.argv])
    directory = Path(directory).resolve()
    path = directory / "kernels.sock"
    spec = directory / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, str(Path(__file__).resolve()), "launch", str(path), "-f", "{connection_file}",
            FIGURES]
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "Python 3 (forked)", "language": "python"}), encoding="utf-8")
    environment = dict(os.environ)
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)  # kernels asked for during the imports wait for them
    # What ipykernel sets before matplotlib is imported, so that plots stay inline.
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    import ipykernel.debugger  # noqa: F401 (debugpy, imported as a kernel starts: 0.4 s each)
    import ipykernel.kernelapp  # noqa: F401
    import matplotlib.pyplot  # noqa: F401
    import torch._dynamo  # noqa: F401

    threading.Thread(target=_reap, daemon=True).start()
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()  # make test's shell
    while True:
        connection, _ = server.accept()
        with connection:
            message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 3)
            request = json.loads(message)
            different = _differences(environment, request["env"])
            if different or len(fds) != 3:
                why = f"{', '.join(different)} not as the server's" if different else "no stdin/out/err"
                print(f"kernel_server: a kernel started the usual way ({why})", file=sys.stderr)
                connection.sendall(json.dumps({"fallback": different}).encode() + b"\n")
            else:
                pid = os.fork()
                if pid == 0:
                    server.close()
                    _kernel(connection, fds, request)
                connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            for fd in fds:
                os.close(fd)


def _kernel(connection, fds, request):
    """In the forked child: become the kernel the launcher would have started."""
    status = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        random.seed()  # a fresh process draws its own seeds
        sys.modules["numpy"].random.seed()
        parent = int(os.environ.get("JPY_PARENT_PID") or 0)  # the process that started the kernel
        threading.Thread(target=_exit_with, args=(request["launcher"], parent), daemon=True).start()
        import ipykernel_launcher
        from ipykernel.kernelapp import launch_new_instance

        # as ``python -m ipykernel_launcher`` has them
        sys.argv = [ipykernel_launcher.__file__, *request["argv"]]
        sys.path.remove(str(Path(__file__).resolve().parent))
        # ipykernel reads JPY_PARENT_PID when imported, here in the server: give it the kernel's
        launch_new_instance(parent_handle=parent)
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    finally:
        try:
            connection.sendall(json.dumps({"status": status}).encode() + b"\n")
        finally:
            os._exit(status)


def _reap():
    """Collect ended kernels (and so count their CPU time in the server's, as time(1) reports)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.2)


def _exit_with(*pids):
    """End when one of ``pids`` has: a kernel when its launcher is killed (jupyter_client's last
    resort) or the process that started it ends (as ipykernel's own watch on its parent does)."""
    while True:
        time.sleep(0.5)
        for pid in filter(None, pids):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(1)


def kernel_argv(argv, env):
    """The kernel's arguments: the kernelspec's, and no figures for a lax run."""
    return [*argv, NO_FIGURES] if env.get("STEPWISE_FIGURES") == "none" else argv


def launch(path, argv):
    argv = kernel_argv(argv, os.environ)

    def usual():
        os.execv(sys.executable, [sys.executable, *FLAGS, "-m", "ipykernel_launcher", *argv])

    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError:
        usual()
    request = {"argv": argv, "env": dict(os.environ), "cwd": os.getcwd(), "launcher": os.getpid()}
    socket.send_fds(client, [json.dumps(request).encode()], [0, 1, 2])
    replies = client.makefile("r", encoding="utf-8")
    reply = json.loads(replies.readline() or "{}")
    if "pid" not in reply:
        usual()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda signum, frame: os.kill(reply["pid"], signum))
    line = replies.readline()  # the kernel's exit status, or nothing if it died
    return json.loads(line)["status"] if line else 1


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "serve":
        serve(*args)
    else:
        sys.exit(launch(args[0], args[1:]))
