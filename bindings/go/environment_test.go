package kiln

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestVersionAndABI(t *testing.T) {
	if Version() == "" {
		t.Fatal("no version")
	}
	if ABIVersion() != HeaderABIVersion {
		t.Fatalf("the library's ABI %d is not the header's %d", ABIVersion(), HeaderABIVersion)
	}
}

func TestEnvironmentReport(t *testing.T) {
	r, err := Environment()
	if err != nil {
		t.Fatal(err)
	}
	if r.Kiln.Version != Version() || r.System.OS == "" || r.System.Arch == "" {
		t.Errorf("kiln %+v system %+v", r.Kiln, r.System)
	}
	// The CPU tests compile with NVRTC, so the doctor must find it.
	if !r.NVRTC.Found || r.NVRTC.Path == "" || len(r.NVRTC.SupportedArchs) == 0 {
		t.Errorf("NVRTC %+v", r.NVRTC)
	}
	if hasGPU() {
		if len(r.GPUs) == 0 || !r.Driver.Found || r.Driver.CUDAVersion == "" {
			t.Fatalf("a GPU is here but the report says: driver %+v, %d GPUs", r.Driver, len(r.GPUs))
		}
		if _, ok := r.Problem("no_driver"); ok {
			t.Fatal("a no_driver problem with a driver")
		}
		return
	}
	p, ok := r.Problem("no_driver")
	if !ok && r.Driver.Found {
		t.Skipf("a driver without devices: problems %+v", r.Problems)
	}
	if !ok || p.Message == "" || p.Hint == "" {
		t.Fatalf("no driver here, but problems are %+v", r.Problems)
	}
	if r.Healthy || r.Driver.Found || len(r.GPUs) != 0 {
		t.Fatalf("healthy %v, driver %+v, gpus %d", r.Healthy, r.Driver, len(r.GPUs))
	}
}

// The Go struct holds every field the doctor writes: a field added to the JSON fails here.
func TestEnvironmentStructCoversTheJSON(t *testing.T) {
	text, err := EnvironmentJSON()
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(text))
	d.DisallowUnknownFields()
	var r EnvironmentReport
	if err := d.Decode(&r); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
}

func TestDeviceCountWithoutADriver(t *testing.T) {
	n, err := DeviceCount()
	if hasGPU() {
		if n < 1 {
			t.Fatal(n)
		}
		d, err := DeviceInfo(0)
		if err != nil || d.Name == "" || d.ComputeCapability.Major < 3 || d.MemoryTotal == 0 || d.Multiprocessors == 0 {
			t.Fatalf("%+v, %v", d, err)
		}
		return
	}
	if r, _ := Environment(); r != nil && r.Driver.Found {
		t.Skip("a driver without devices")
	}
	wantError(t, err, ErrDriverNotFound)
	_, err = DeviceInfo(0)
	wantError(t, err, ErrDriverNotFound)
	_, err = TargetForDevice(0)
	wantError(t, err, ErrDriverNotFound)
	_, err = NewStream(0)
	wantError(t, err, ErrDriverNotFound)
}
