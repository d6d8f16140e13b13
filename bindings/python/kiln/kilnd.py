"""A small client for kilnd, kiln's HTTP service, for what a co-located Python process needs beside
the JSON API: registering POSIX shared memory with kilnd and copying between it and kilnd's buffers
without sending a body (docs/SERVICE.md, "Shared memory"). Standard library only.

    from kiln import kilnd
    client = kilnd.Client("http://127.0.0.1:8470", token)
    with kilnd.SharedMemory(client, 256 << 20) as region:
        region.numpy(np.float32)[:] = data           # write it in place
        region.upload(buffer_id)                     # region -> kilnd's buffer, no body
        region.download(buffer_id)                   # and back
"""

import http.client
import json
import os
import urllib.parse
from multiprocessing import shared_memory

import numpy as np

__all__ = ["Client", "KilndError", "SharedMemory"]


class KilndError(Exception):
    """kilnd refused a request: the HTTP status, and the error body's code, message and field."""

    def __init__(self, status, code, message, field=None):
        super().__init__(f"kilnd answered {status} {code}: {message}" + (f" (field {field})" if field else ""))
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
        memory.close()
        memory.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
