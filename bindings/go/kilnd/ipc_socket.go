package kilnd

// kilnd's IPC socket (kilnd --ipc-socket PATH, with allow_client_ipc): CUDA IPC with a co-located
// process (docs/SERVICE.md, "CUDA IPC"). The wire format is kiln's frame (u32 type, u64 payload
// length, payload, little-endian) with file descriptors passed by SCM_RIGHTS; requests and replies
// are JSON.
//
//	s, err := kilnd.DialIpcSocket("/run/kilnd.sock", token)
//	exported, err := s.ExportBuffer(bufferID) // map exported.FD with cuMemImportFromShareableHandle
//	mine, err := s.ImportBuffer(fd, size, 0, "tag") // this process's cuMemCreate memory as a buffer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"syscall"
)

const (
	ipcRequestFrame = 1
	ipcReplyFrame   = 2
	ipcHeaderBytes  = 12
)

// IpcBuffer is kilnd's description of a buffer over the IPC socket.
type IpcBuffer struct {
	ID       uint64 `json:"id"`
	Device   int    `json:"device"`
	Bytes    uint64 `json:"bytes"`
	Tag      string `json:"tag"`
	Imported bool   `json:"imported"`
	OwnerPID int    `json:"owner_pid"`
}

// ExportedBuffer is a kilnd buffer's memory for this process: FD is a VMM POSIX file descriptor
// (the caller closes it) to map with cuMemImportFromShareableHandle, cuMemAddressReserve, cuMemMap
// and cuMemSetAccess for MappedBytes.
type ExportedBuffer struct {
	FD          int
	Buffer      IpcBuffer `json:"buffer"`
	MappedBytes uint64    `json:"mapped_bytes"`
	DeviceUUID  string    `json:"device_uuid"`
}

// IpcSocket is one connection to kilnd's IPC socket. Not safe for concurrent use: one request at a
// time (open one per goroutine that needs it).
type IpcSocket struct {
	conn  *net.UnixConn
	token string
}

// DialIpcSocket connects to kilnd's IPC socket at path with a tenant's bearer token.
func DialIpcSocket(path, token string) (*IpcSocket, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return &IpcSocket{conn: conn, token: token}, nil
}

// Close ends the connection.
func (s *IpcSocket) Close() error { return s.conn.Close() }

// Hello is kilnd's protocol version and operations.
func (s *IpcSocket) Hello() (protocol int, ops []string, err error) {
	var reply struct {
		Protocol int      `json:"protocol"`
		Ops      []string `json:"ops"`
	}
	fds, err := s.ask(map[string]any{"op": "hello"}, -1, &reply)
	closeAll(fds)
	return reply.Protocol, reply.Ops, err
}

// ExportBuffer maps nothing itself: it returns the descriptor of kilnd's buffer id.
func (s *IpcSocket) ExportBuffer(id uint64) (*ExportedBuffer, error) {
	var reply ExportedBuffer
	fds, err := s.ask(map[string]any{"op": "export_buffer", "token": s.token, "buffer": id}, -1, &reply)
	if err != nil {
		closeAll(fds)
		return nil, err
	}
	if len(fds) != 1 {
		closeAll(fds)
		return nil, fmt.Errorf("kilnd: an export came with %d descriptors", len(fds))
	}
	reply.FD = fds[0]
	return &reply, nil
}

// ImportBuffer hands kilnd this process's device memory (a cuMemCreate allocation with POSIX file
// descriptor handles, exported with cuMemExportToShareableHandle; bytes its whole size) as a buffer
// on device. kilnd frees it when this process ends. The caller keeps (and closes) fd.
func (s *IpcSocket) ImportBuffer(fd int, bytes uint64, device int, tag string) (IpcBuffer, error) {
	var reply struct {
		Buffer IpcBuffer `json:"buffer"`
	}
	request := map[string]any{"op": "import_buffer", "token": s.token, "bytes": bytes, "device": device, "tag": tag}
	fds, err := s.ask(request, fd, &reply)
	closeAll(fds)
	return reply.Buffer, err
}

func (s *IpcSocket) ask(request map[string]any, fd int, out any) ([]int, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, ipcHeaderBytes, ipcHeaderBytes+len(body))
	binary.LittleEndian.PutUint32(frame[0:4], ipcRequestFrame)
	binary.LittleEndian.PutUint64(frame[4:12], uint64(len(body)))
	frame = append(frame, body...)
	var rights []byte
	if fd >= 0 {
		rights = syscall.UnixRights(fd)
	}
	if _, _, err := s.conn.WriteMsgUnix(frame, rights, nil); err != nil {
		return nil, err
	}
	// The descriptors come with the reply's first bytes: read the header with room for them.
	header := make([]byte, ipcHeaderBytes)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, _, _, err := s.conn.ReadMsgUnix(header, oob)
	if err != nil {
		return nil, err
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(s.conn, header[n:]); err != nil {
		return fds, err
	}
	kind := binary.LittleEndian.Uint32(header[0:4])
	size := binary.LittleEndian.Uint64(header[4:12])
	if size > 1<<20 {
		return fds, fmt.Errorf("kilnd: a reply of %d bytes", size)
	}
	payload := make([]byte, size)
	if _, err := io.ReadFull(s.conn, payload); err != nil {
		return fds, err
	}
	var refusal struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(payload, &refusal); err != nil {
		return fds, err
	}
	if kind != ipcReplyFrame || refusal.Error != nil {
		e := &Error{Code: "unknown", Message: string(payload)}
		if refusal.Error != nil {
			e.Code, e.Message, e.Field = refusal.Error.Code, refusal.Error.Message, refusal.Error.Field
		}
		return fds, e
	}
	return fds, json.Unmarshal(payload, out)
}

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	messages, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range messages {
		got, err := syscall.ParseUnixRights(&messages[i])
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}
