package kiln

import (
	"encoding/binary"
	"math"
	"reflect"
	"testing"
)

func TestArgumentsArePackedAtMultiplesOfEight(t *testing.T) {
	var a Args
	a.Int32(-2).Float64(1.5).Uint8(7).Bytes([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}).Ptr(0x1234).Float32(2)
	wantSizes := []uintptr{4, 8, 1, 9, 8, 4}
	if !reflect.DeepEqual(a.sizes, wantSizes) || a.Len() != 6 {
		t.Fatalf("sizes %v, want %v", a.sizes, wantSizes)
	}
	if len(a.packed) != 8+8+8+16+8+8 {
		t.Fatalf("%d packed bytes", len(a.packed))
	}
	le := binary.LittleEndian
	if int32(le.Uint32(a.packed[0:])) != -2 || math.Float64frombits(le.Uint64(a.packed[8:])) != 1.5 ||
		a.packed[16] != 7 || a.packed[24] != 1 || a.packed[32] != 9 || a.packed[33] != 0 ||
		le.Uint64(a.packed[40:]) != 0x1234 || math.Float32frombits(le.Uint32(a.packed[48:])) != 2 {
		t.Fatalf("packed % x", a.packed)
	}
	a.Reset()
	if a.Len() != 0 || len(a.packed) != 0 || a.err != nil {
		t.Fatal("Reset")
	}
}

func TestAddTakesEveryKernelType(t *testing.T) {
	var a Args
	for _, v := range []any{int8(1), uint8(1), int16(1), uint16(1), int32(1), uint32(1), int64(1), uint64(1),
		float32(1), float64(1), true, uintptr(1), DevicePtr(1), Bytes{1, 2, 3}, [16]byte{}} {
		a.Add(v)
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	want := []uintptr{1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 1, 8, 8, 3, 16}
	if !reflect.DeepEqual(a.sizes, want) {
		t.Fatalf("sizes %v, want %v", a.sizes, want)
	}
}

func TestArgumentsThatAreNotKernelTypes(t *testing.T) {
	for _, c := range []struct {
		value any
		parts []string
	}{
		{int(3), []string{"argument 1", "Go int", "int32 or int64"}},
		{uint(3), []string{"argument 1", "Go uint"}},
		{[]byte{1}, []string{"argument 1", "kiln.Bytes"}},
		{"text", []string{"argument 1", "string"}},
		{struct{ X int32 }{1}, []string{"argument 1", "struct"}},
		{[2]int32{}, []string{"argument 1", "[2]int32"}},
	} {
		var a Args
		a.Float32(1).Add(c.value).Int32(2)
		wantError(t, a.err, ErrInvalidArgument, c.parts...)
		// Nothing is launched: the Go side refuses before the library sees the (nil) kernel.
		err := (*Kernel)(nil).Launch(nil, Cover(1, 1), float32(1), c.value)
		wantError(t, err, ErrInvalidArgument, c.parts...)
	}
}

func TestClosedBufferArgument(t *testing.T) {
	var closed Buffer // never opened: no handle, like a closed one
	err := (*Kernel)(nil).Launch(nil, Cover(1, 1), &closed)
	wantError(t, err, ErrInvalidHandle, "argument 0", "*kiln.Buffer", "closed")
	err = (*Kernel)(nil).Launch(nil, Cover(1, 1), int32(1), (*Managed)(nil))
	wantError(t, err, ErrInvalidHandle, "argument 1", "*kiln.Managed")
}

// The check a launch makes before the library is called, as a pure function: a machine with one
// GPU cannot make a buffer of another device.
func TestBufferOfAnotherDeviceIsRefused(t *testing.T) {
	owners := []argumentOwner{
		{index: 0, kind: "*kiln.Managed", device: -1},
		{index: 1, kind: "*kiln.Buffer", device: 0},
		{index: 3, kind: "*kiln.Buffer", device: 1},
	}
	if err := checkArgumentDevices(0, owners[:2]); err != nil {
		t.Fatal(err)
	}
	err := checkArgumentDevices(0, owners)
	wantError(t, err, ErrInvalidArgument, "argument 3", "*kiln.Buffer of device 1", "stream is of device 0")
	if err := checkArgumentDevices(1, owners[:1]); err != nil {
		t.Fatal("managed memory is usable from any device:", err)
	}
}

func TestNilKernelIsRefusedByTheLibrary(t *testing.T) {
	e := wantError(t, (*Kernel)(nil).Launch(nil, Cover(1, 1)), ErrInvalidHandle)
	if e.Call == "" {
		t.Fatalf("the library's error names no call: %+v", e)
	}
}

func TestBuildingArgumentsAllocatesNothing(t *testing.T) {
	var a Args
	x := &Buffer{} // open as far as Args can tell, without C
	x.record.Store(&bufferRecord{ptr: 0x100})
	build := func() {
		a.Reset()
		a.Float32(2).Ptr(0x200).Buffer(x).Int32(1 << 20).Add(int64(5))
	}
	build()
	if n := testing.AllocsPerRun(100, build); n != 0 {
		t.Fatalf("%v allocations per argument list", n)
	}
	if err := checkArgumentDevices(0, a.refs); err != nil {
		t.Fatal(err)
	}
	a.Reset()
	if a.refs[:1][0].owner != nil {
		t.Fatal("Reset keeps the buffer reachable")
	}
}

func TestCover(t *testing.T) {
	if c := Cover(1000, 256); c.Grid.X != 4 || c.Block.X != 256 {
		t.Fatalf("%+v", c)
	}
	if c := Cover(1024, 256); c.Grid.X != 4 {
		t.Fatalf("%+v", c)
	}
}
