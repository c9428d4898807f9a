"""A corral host client in plain Python (3.8+, standard library only).

It speaks the JSON form of corral's host protocol over the supervisor's
Unix socket: frames of a 4-byte little-endian length and a JSON body (see
"Host protocol in JSON" in corral's README).

    from corral_client import Corral, CorralError

    with Corral() as corral:                       # $CORRAL_SOCKET, or /run/corral/corral.sock
        print(corral.call("hello", "upper", b"hi"))    # b'HI'
        for plugin in corral.providing("exporter"):
            print(plugin["name"], plugin["state"])

Run as a script it calls one method: python3 corral_client.py PLUGIN METHOD [DATA]
"""

import itertools
import json
import os
import socket
import struct
import sys

PROTOCOL_VERSION = 10
_HEADER = struct.Struct("<I")


class CorralError(Exception):
    """An error the supervisor or a plugin answered with.

    kind is one of corral's error kinds: "plugin", "unknown_method",
    "unknown_plugin", "crashed", "timeout", "unavailable", "protocol",
    "bad_request", "permission_denied", "not_found", "limit_exceeded".
    """

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def default_socket():
    """The socket corral serves on: $CORRAL_SOCKET, else root's default."""
    return os.environ.get("CORRAL_SOCKET", "/run/corral/corral.sock")


class Corral:
    """One connection to a corral supervisor; requests go one at a time."""

    def __init__(self, path=None, client="python"):
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.connect(path or default_socket())
        self._ids = itertools.count(1)
        self._send({"protocol": PROTOCOL_VERSION, "client": client})
        hello = self._receive()
        if "reply" in hello:  # refused: an error with id 0
            raise _error(hello["reply"])
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise CorralError("protocol", f"corral speaks protocol {hello.get('protocol')}")
        self.server = hello.get("server")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._socket.close()

    def call(self, plugin, method, data=b"", timeout_ms=0):
        """Calls METHOD of PLUGIN with DATA (bytes or str); returns the reply bytes."""
        if isinstance(data, str):
            data = data.encode()
        reply = self._request(
            {"Call": {"plugin": plugin, "method": method, "input": list(data), "timeout_ms": timeout_ms}}
        )
        return bytes(reply["Called"])

    def list(self):
        """Every plugin's status, as corral ps --json shows it."""
        return self._request("List")["Plugins"]

    def providing(self, point):
        """The plugins that provide extension point POINT."""
        return [plugin for plugin in self.list() if point in plugin.get("provides", [])]

    def inspect(self, plugin):
        """Everything about one plugin, as corral inspect --json shows it."""
        return self._request({"Inspect": {"plugin": plugin}})["Inspected"]

    def publish(self, topic, payload=b""):
        """Publishes PAYLOAD on TOPIC; returns how many subscribers got it."""
        if isinstance(payload, str):
            payload = payload.encode()
        return self._request({"Publish": {"topic": topic, "payload": list(payload)}})["Published"]

    def _request(self, body):
        request_id = next(self._ids)
        self._send({"id": request_id, "body": body})
        while True:
            response = self._receive()
            if response["id"] == 0 or response["id"] == request_id:
                break
        reply = response["reply"]
        if isinstance(reply, dict) and "Error" in reply:
            raise _error(reply)
        return reply

    def _send(self, message):
        body = json.dumps(message).encode()
        self._socket.sendall(_HEADER.pack(len(body)) + body)

    def _receive(self):
        (length,) = _HEADER.unpack(self._read(_HEADER.size))
        return json.loads(self._read(length))

    def _read(self, count):
        data = bytearray()
        while len(data) < count:
            chunk = self._socket.recv(count - len(data))
            if not chunk:
                raise ConnectionError("corral closed the connection")
            data += chunk
        return bytes(data)


def _error(reply):
    error = reply["Error"]
    return CorralError(error["kind"], error["message"])


def main(argv):
    if len(argv) not in (3, 4):
        print(f"usage: {argv[0]} PLUGIN METHOD [DATA]", file=sys.stderr)
        return 2
    try:
        with Corral() as corral:
            reply = corral.call(argv[1], argv[2], argv[3] if len(argv) == 4 else b"")
    except CorralError as error:
        print(f"corral: {error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
