"""A small client for kilnd, kiln's HTTP service, for what a co-located Python process needs beside
the JSON API: registering POSIX shared memory with kilnd and copying between it and kilnd's buffers
without sending a body (docs/SERVICE.md, "Shared memory"), and CUDA IPC of device memory over
kilnd's IPC socket ("CUDA IPC"). Standard library only (and NumPy for views).

    from kiln import kilnd
    client = kilnd.Client("http://127.0.0.1:8470", token)
    with kilnd.SharedMemory(client, 256 << 20) as region:
        region.numpy(np.float32)[:] = data           # write it in place
        region.upload(buffer_id)                     # region -> kilnd's buffer, no body
        region.download(buffer_id)                   # and back

    with kilnd.IpcSocket("/run/kilnd.sock", token) as ipc:
        exported = ipc.export_buffer(buffer_id)      # a VMM file descriptor of kilnd's buffer: map it
        mine = ipc.import_buffer(fd, nbytes)         # this process's cuMemCreate memory as a kilnd buffer
"""

import http.client
import json
import os
import socket
import struct
import urllib.parse
from multiprocessing import shared_memory

import numpy as np

__all__ = ["Client", "ExportedBuffer", "IpcSocket", "KilndError", "SharedMemory"]


class KilndError(Exception):
    """kilnd refused a request: the HTTP status (None over the IPC socket), and the error body's
    code, message and field."""

    def __init__(self, status, code, message, field=None):
        answered = f"kilnd answered {status} {code}" if status is not None else f"kilnd refused: {code}"
        super().__init__(f"{answered}: {message}" + (f" (field {field})" if field else ""))
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class Client:
    """One kept-alive connection to kilnd (not shared between threads: make one per thread)."""

    def __init__(self, url="http://127.0.0.1:8470", token=None, *, timeout=60.0):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"kilnd's address must be http://host:port, not {url!r}")
        self._host, self._port = parsed.hostname, parsed.port or 8470
        self._timeout = timeout
        self._token = token
        self._connection = None

    def request(self, method, path, body=None):
        """Sends one request and returns the answer's JSON (None for an empty answer); raises
        KilndError for an error answer."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):  # a kept-alive connection kilnd closed meanwhile: once more
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                self._connection.request(method, path, body=payload, headers=headers)
                answer = self._connection.getresponse()
                data = answer.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 1:
                    raise
        parsed = json.loads(data) if data else None
        if answer.status >= 400:
            error = (parsed or {}).get("error", {}) if isinstance(parsed, dict) else {}
            raise KilndError(answer.status, error.get("code", "unknown"), error.get("message", data.decode(errors="replace")),
                             error.get("field"))
        return parsed

    def close(self):
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SharedMemory:
    """POSIX shared memory this process creates and registers with kilnd (which must run with
    allow_client_shm). kilnd ties the region to this process: it drops it when the process ends.
    ``close()`` (or leaving the ``with``) unregisters, unmaps and unlinks it."""

    def __init__(self, client, nbytes, *, tie_to_process=True):
        if nbytes < 1:
            raise ValueError("a shared memory region holds at least 1 byte")
        self._client = client
        self._memory = shared_memory.SharedMemory(create=True, size=nbytes)
        self.nbytes = nbytes
        body = {"name": "/" + self._memory.name.lstrip("/"), "bytes": nbytes}
        if tie_to_process:
            body["owner_pid"] = os.getpid()
        try:
            self.info = client.request("POST", "/v1/shm", body)
        except BaseException:
            self._release_memory()
            raise
        self.id = self.info["id"]

    @property
    def buf(self):
        """The region's bytes, writable (a memoryview)."""
        return self._memory.buf[: self.nbytes]

    def numpy(self, dtype=np.uint8, shape=None):
        """A NumPy view of the region (no copy)."""
        dtype = np.dtype(dtype)
        view = np.frombuffer(self._memory.buf, dtype=dtype, count=self.nbytes // dtype.itemsize)
        return view if shape is None else view.reshape(shape)

    def upload(self, buffer, *, offset=0, region_offset=0, nbytes=None):
        """Copies from the region into kilnd's buffer (its id); returns the bytes copied."""
        return self._copy("upload", buffer, offset, region_offset, nbytes)

    def download(self, buffer, *, offset=0, region_offset=0, nbytes=None):
        """Copies from kilnd's buffer into the region; returns the bytes copied."""
        return self._copy("download", buffer, offset, region_offset, nbytes)

    def _copy(self, direction, buffer, offset, region_offset, nbytes):
        body = {"direction": direction, "region": self.id, "offset": offset, "region_offset": region_offset}
        if nbytes is not None:
            body["bytes"] = nbytes
        return self._client.request("POST", f"/v1/buffers/{int(buffer)}/shm", body)["bytes"]

    def close(self):
        if self._memory is None:
            return
        try:
            self._client.request("DELETE", f"/v1/shm/{self.id}")
        except KilndError as e:
            if e.status != 404:  # gone already (kilnd restarted): nothing to unregister
                raise
        finally:
            self._release_memory()

    def _release_memory(self):
        memory, self._memory = self._memory, None
        memory.unlink()  # the name goes at once; the memory with the last mapping
        try:
            memory.close()
        except BufferError:
            self._lingering = memory  # unmapped when this object goes, after the views it outlives
            raise BufferError("kiln.kilnd.SharedMemory.close(): NumPy arrays or memoryviews of the region are "
                              "still alive; drop them before closing it (it is unregistered and unlinked)") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ExportedBuffer:
    """A kilnd buffer's device memory for this process: ``fd`` is a VMM POSIX file descriptor (this
    object owns it: ``close()``), to map with cuMemImportFromShareableHandle, then cuMemAddressReserve,
    cuMemMap and cuMemSetAccess for ``mapped_bytes``; ``buffer`` is kilnd's description of it."""

    def __init__(self, fd, reply):
        self.fd = fd
        self.buffer = reply["buffer"]
        self.mapped_bytes = reply["mapped_bytes"]
        self.device_uuid = reply["device_uuid"]

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class IpcSocket:
    """kilnd's IPC socket (``kilnd --ipc-socket PATH`` with ``allow_client_ipc``): CUDA IPC with a
    co-located process. The wire format is kiln's frame (u32 type, u64 length, payload, little-endian)
    with descriptors passed by SCM_RIGHTS; requests are JSON (docs/SERVICE.md, "CUDA IPC"). One
    connection, not shared between threads."""

    _REQUEST, _REPLY = 1, 2
    _HEADER = struct.Struct("<IQ")

    def __init__(self, path, token=None, *, timeout=30.0):
        self._token = token
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(path)
        except BaseException:
            self._socket.close()
            raise

    def hello(self):
        """The protocol version and operations kilnd offers."""
        return self._ask({"op": "hello"})[0]

    def export_buffer(self, buffer):
        """kilnd's buffer (its id) as an ExportedBuffer: its memory, mapped by this process with no copy."""
        reply, fds = self._ask({"op": "export_buffer", "token": self._token, "buffer": int(buffer)})
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise KilndError(None, "internal", f"an export came with {len(fds)} descriptors")
        return ExportedBuffer(fds[0], reply)

    def import_buffer(self, fd, nbytes, *, device=0, tag=""):
        """This process's device memory (a cuMemCreate allocation with POSIX file descriptor handles,
        exported by cuMemExportToShareableHandle; ``nbytes`` its whole size) as a kilnd buffer; returns
        kilnd's description of it (its "id" names it in launches). kilnd frees it when this process
        ends. The caller keeps (and closes) ``fd``."""
        request = {"op": "import_buffer", "token": self._token, "bytes": int(nbytes), "device": int(device), "tag": tag}
        return self._ask(request, [fd])[0]["buffer"]

    def _ask(self, request, fds=()):
        body = json.dumps(request).encode()
        socket.send_fds(self._socket, [self._HEADER.pack(self._REQUEST, len(body)) + body], list(fds))
        header, got, _, _ = socket.recv_fds(self._socket, self._HEADER.size, 4, socket.MSG_WAITALL)
        if len(header) != self._HEADER.size:
            for fd in got:
                os.close(fd)
            raise ConnectionError("kilnd closed the IPC socket")
        kind, size = self._HEADER.unpack(header)
        payload = bytearray()
        while len(payload) < size:
            chunk = self._socket.recv(size - len(payload))
            if not chunk:
                raise ConnectionError("kilnd closed the IPC socket in the middle of a reply")
            payload += chunk
        reply = json.loads(payload)
        if kind != self._REPLY or "error" in reply:
            for fd in got:
                os.close(fd)
            error = reply.get("error", {})
            raise KilndError(None, error.get("code", "unknown"), error.get("message", ""), error.get("field"))
        return reply, got

    def close(self):
        self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
