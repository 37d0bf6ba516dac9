#!/usr/bin/env python3
"""tests/lib/pty_run.py - runs a command on a fresh pseudo-terminal, like a user at a terminal:
types the given lines, resizes the terminal once, and prints everything the terminal showed.
  pty_run.py ROWS COLS SCRIPT_FILE -- CMD...
SCRIPT_FILE lines: 'send TEXT' (TEXT + newline), 'expect TEXT' (wait up to 20 s),
'resize ROWS COLS', 'sleep S', 'eof' (send ^D). Exit status: the command's."""
import fcntl, os, pty, select, struct, sys, termios, time

def main():
    rows, cols, script = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    seen = b""
    def pump(t):
        nonlocal seen
        r, _, _ = select.select([fd], [], [], t)
        if r:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                return False
        return True
    deadline = time.time() + 120
    status = None
    for line in open(script).read().splitlines():
        op, _, arg = line.partition(" ")
        if op == "send":
            os.write(fd, arg.encode() + b"\r")
        elif op == "expect":
            end = time.time() + 30
            while arg.encode() not in seen and time.time() < end:
                if not pump(0.1):
                    break
            if arg.encode() not in seen:
                sys.stdout.write(seen.decode(errors="replace"))
                sys.exit(f"pty_run: never saw {arg!r}")
        elif op == "resize":
            r, c = map(int, arg.split())
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", r, c, 0, 0))
        elif op == "sleep":
            end = time.time() + float(arg)
            while time.time() < end:
                pump(0.05)
        elif op == "eof":
            os.write(fd, b"\x04")
    while time.time() < deadline:
        if not pump(0.1):
            break
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
            while pump(0.05) and select.select([fd], [], [], 0)[0]:
                pass
            break
    else:
        os.kill(pid, 9)
        sys.exit("pty_run: command did not end")
    if status is None:   # the terminal closed first: the child is exiting, wait for it
        end = time.time() + 30
        while status is None and time.time() < end:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            else:
                time.sleep(0.05)
        if status is None:
            os.kill(pid, 9)
            sys.exit("pty_run: command did not end")
    sys.stdout.write(seen.decode(errors="replace"))
    sys.exit(os.waitstatus_to_exitcode(status))

main()
