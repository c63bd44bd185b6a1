# A NOTIFY_SOCKET for the tests, as systemd has one: a unix datagram socket
# bound at the path given. It prints one JSON line when bound, then one per
# message with its arrival time. Descriptors passed with a message
# (systemd-notify's BARRIER=1) are closed, as systemd closes them, which
# tells systemd-notify the message was read.
import array
import json
import os
import socket
import sys
import time

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
fd_size = array.array("i").itemsize
while True:
    msg, ancillary, _flags, _addr = sock.recvmsg(65536, socket.CMSG_SPACE(64 * fd_size) + socket.CMSG_SPACE(16))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(data[: len(data) - len(data) % fd_size])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"t": time.monotonic(), "msg": msg.decode("utf-8", "replace")}), flush=True)
