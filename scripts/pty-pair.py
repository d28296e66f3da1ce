#!/usr/bin/env python3
"""A linked pair of pseudo-terminals (what `socat pty,link=A pty,link=B` does), with the Python
standard library only, so tests and the demo can make a serial line on any fresh machine.

    pty-pair.py LINK_A LINK_B

Creates two ptys, links LINK_A and LINK_B to their slave devices, prints READY, and copies bytes
between the two masters until stdin closes or it receives SIGTERM/SIGINT; then removes the links.
"""
import os
import pty
import select
import signal
import sys
import termios
import tty


def make_pty(link):
    master, slave = pty.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    name = os.ttyname(slave)
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(name, link)
    return master, slave


def main():
    if len(sys.argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    links = sys.argv[1:3]
    running = [True]

    def stop(*_):
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    (ma, sa), (mb, sb) = make_pty(links[0]), make_pty(links[1])
    peer = {ma: mb, mb: ma}
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    watch = [ma, mb, sys.stdin.fileno()]
    try:
        while running[0]:
            try:
                readable, _, _ = select.select(watch, [], [], 0.5)
            except InterruptedError:
                continue
            for fd in readable:
                if fd == sys.stdin.fileno():
                    if not os.read(fd, 1024):
                        running[0] = False
                    continue
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    # no process has the other side open yet: nothing to relay
                    continue
                if data:
                    os.write(peer[fd], data)
    finally:
        for link in links:
            try:
                os.unlink(link)
            except OSError:
                pass
        for fd in (ma, sa, mb, sb):
            try:
                os.close(fd)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
