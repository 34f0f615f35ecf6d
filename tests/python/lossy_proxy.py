"""A TCP proxy in front of the broker that loses acknowledgements: it passes requests on, but
instead of passing on every `every`-th response it cuts both connections. The broker handled the
request and the client never heard: a correct client retries, and a correct broker must not apply
the retry twice. Point the broker's `advertised.listeners` at the proxy (see `start_behind`) so
every connection a client opens after bootstrap goes through it."""

import socket
import struct
import threading


class LossyProxy:
    def __init__(self, every):
        self.every = every
        self.cuts = 0
        self.responses = 0
        self.target = None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._ready = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def forward_to(self, port):
        self.target = port
        self._ready.set()

    def stop_cutting(self):
        self.every = 0

    def close(self):
        self._listener.close()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        if not self._ready.wait(30):
            client.close()
            return
        try:
            broker = socket.create_connection(("127.0.0.1", self.target))
        except OSError:
            client.close()
            return
        threading.Thread(target=_copy, args=(client, broker), daemon=True).start()
        try:
            while True:
                size = _recv_exact(broker, 4)
                body = _recv_exact(broker, max(struct.unpack(">i", size)[0], 0))
                with self._lock:
                    self.responses += 1
                    cut = self.every and self.responses % self.every == 0
                    self.cuts += bool(cut)
                if cut:
                    break
                client.sendall(size + body)
        except OSError:
            pass
        for s in (broker, client):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def start_behind(broker_factory, every, overrides=None):
    """A broker that advertises a LossyProxy in front of it: (proxy, broker)."""
    proxy = LossyProxy(every)
    b = broker_factory(overrides={**(overrides or {}), "advertised.listeners": f"PLAINTEXT://{proxy.address}"})
    proxy.forward_to(b.port)
    return proxy, b


def _recv_exact(s, n):
    data = b""
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            raise OSError("closed")
        data += more
    return data


def _copy(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
