"""What the socket and shared-memory transports share about one connection (internal):
the reason a reader stops reading it, and closing its socket without raising."""

import socket


class ConnectionLost(Exception):
    """Why the reader stopped reading one connection: `error` is a final error
    (SchemaMismatch) that ends the transport, or None to reconnect."""

    def __init__(self, text, error=None):
        super().__init__(text)
        self.error = error


def shutdown_socket(sock):
    """Shuts `sock` down both ways; a socket already closed is fine."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
