# A WebSocket echo server on port 9000 with only Python's standard library, for the lab proxy tests: it answers
# the handshake (RFC 6455) and sends every text or binary message back unmasked.
import base64, hashlib, socket, threading

def handle(c):
    req = b""
    while b"\r\n\r\n" not in req:
        chunk = c.recv(4096)
        if not chunk:
            return
        req += chunk
    keys = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")]
    if not keys:  # a plain request (a browser opening the page): say what this is
        body = b"a WebSocket echo server\n"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        c.close()
        return
    key = keys[0]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    f = c.makefile("rb")
    while True:
        head = f.read(2)
        if len(head) < 2:
            return
        op, n = head[0] & 15, head[1] & 127
        if n == 126:
            n = int.from_bytes(f.read(2), "big")
        elif n == 127:
            n = int.from_bytes(f.read(8), "big")
        mask = f.read(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(n)))
        if op == 8:
            return
        size = bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, "big")
        c.sendall(bytes([head[0] & 0x8F]) + size + data)  # the same FIN and opcode: fragments stay fragments

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(16)
while True:
    conn, _ = s.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
