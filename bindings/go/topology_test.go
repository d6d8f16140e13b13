package kiln

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const gib = 1 << 30

// fixture is a recorded machine of tests/topology/fixtures ($KILN_TOPOLOGY_FIXTURES, for a test
// binary run elsewhere than bindings/go).
func fixture(name string) string {
	if dir := os.Getenv("KILN_TOPOLOGY_FIXTURES"); dir != "" {
		return filepath.Join(dir, name)
	}
	return filepath.Join("..", "..", "tests", "topology", "fixtures", name)
}

func busIDs(p *Placement) []string {
	var out []string
	for _, g := range p.GPUs {
		out = append(out, g.PCIBusID)
	}
	return out
}

// The facts tests/topology/test_placement.cpp and test_topo_cli.cpp check, through the C ABI.
func TestTopologyFixtures(t *testing.T) {
	pcie, err := Topology(fixture("pcie-8gpu-2socket"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pcie.GPUs) != 8 || len(pcie.Matrix.Rows) != 8 || len(pcie.NUMANodes) != 2 {
		t.Fatalf("%d GPUs, %d matrix rows, %d NUMA nodes", len(pcie.GPUs), len(pcie.Matrix.Rows), len(pcie.NUMANodes))
	}
	if got := pcie.Matrix.Rows[0][:9]; !reflect.DeepEqual(got, []string{"GPU0", "X", "PIX", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS"}) {
		t.Errorf("matrix row 0: %v", got)
	}
	two, err := pcie.Choose(2, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(busIDs(two), []string{"0000:bc:00.0", "0000:bd:00.0"}) || two.Link != "PIX" ||
		two.GPUs[0].UUID != "GPU-8c0e0006-5e1f-4b2a-9d3c-0a1b2c3d4e06" || two.GPUs[0].Index != 6 ||
		!strings.Contains(two.Reason, "under one PCIe switch") {
		t.Errorf("choose 2: %+v", two)
	}
	four, err := pcie.Choose(4, 0)
	if err != nil || !reflect.DeepEqual(busIDs(four), []string{"0000:18:00.0", "0000:19:00.0", "0000:3a:00.0", "0000:3b:00.0"}) || four.Link != "NODE" {
		t.Errorf("choose 4: %+v, %v", four, err)
	}
	if p, err := pcie.Choose(4, 79*gib); err != nil || len(p.GPUs) != 4 {
		t.Errorf("choose 4 with 79 GiB free: %+v, %v", p, err)
	}
	_, err = pcie.Choose(2, 100*gib)
	wantError(t, err, ErrInvalidArgument, "only 0 of 8 qualify")
	_, err = pcie.Choose(9, 0)
	wantError(t, err, ErrInvalidArgument)
	// Constraints reach the library: one of the best pair excluded, socket 0 only.
	constrained, err := pcie.ChooseWith(2, PlacementConstraints{NUMANode: 0, Exclude: []string{"0000:bc:00.0"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range constrained.GPUs {
		if g.PCIBusID == "0000:bc:00.0" || g.Index >= 4 {
			t.Errorf("constrained choice %+v: excluded, or not on socket 0 (GPUs 0-3)", constrained)
		}
	}

	dgx, err := Topology(fixture("dgx-h100-8gpu"))
	if err != nil {
		t.Fatal(err)
	}
	g := dgx.GPUs[3]
	if len(dgx.GPUs) != 8 || g.PCIBusID != "0000:5d:00.0" || g.NUMANode != 0 || g.CPUAffinity != "0-55,112-167" ||
		len(g.NVLinks) != 18 || len(g.PCIePath) != 3 || g.PCIePath[2].Role != "root_port" ||
		g.PCIe.CurrentGeneration == nil || *g.PCIe.CurrentGeneration != 5 || len(dgx.P2P) != 56 || dgx.Matrix.Rows[0][2] != "NV18" {
		t.Errorf("dgx GPU 3: %+v; %d p2p pairs", g, len(dgx.P2P))
	}
	nv, err := dgx.Choose(4, 0)
	if err != nil || nv.Link != "NV18" || !reflect.DeepEqual(busIDs(nv), []string{"0000:18:00.0", "0000:2a:00.0", "0000:5d:00.0", "0000:ba:00.0"}) {
		t.Errorf("dgx choose 4: %+v, %v", nv, err)
	}

	vm, err := Topology(fixture("h100-x1-vm"))
	if err != nil {
		t.Fatal(err)
	}
	one, err := vm.Choose(1, 0)
	if err != nil || len(one.GPUs) != 1 || one.GPUs[0].UUID != "GPU-30885cc1-976c-340d-29af-f96e1bdbeb46" || one.Link != "X" {
		t.Errorf("vm choose 1: %+v, %v", one, err)
	}
}

// The Go structs hold every field the library writes: a field added to the JSON fails here.
func TestTopologyStructsCoverTheJSON(t *testing.T) {
	for _, name := range []string{"pcie-8gpu-2socket", "dgx-h100-8gpu", "h100-x1-vm"} {
		text, err := TopologyJSON(fixture(name))
		if err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(bytes.NewReader(text))
		d.DisallowUnknownFields()
		var r TopologyReport
		if err := d.Decode(&r); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestTopologyBadFixture(t *testing.T) {
	_, err := Topology("/nonexistent/fixture")
	if err == nil {
		t.Fatal("a fixture folder that does not exist")
	}
	asError(t, err)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "facts.json"), []byte(`{"format": "kiln-topology-facts/1", "gpus": [{}]}`), 0o644)
	_, err = Topology(dir)
	wantError(t, err, ErrInvalidArgument, "gpus[0].uuid: missing")
}

// kilnCLI is the kiln command-line tool of this build ($KILN_CLI, which CTest sets), or "".
func kilnCLI(t *testing.T) string {
	if p := os.Getenv("KILN_CLI"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "build", "tools", "kiln")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// The Go binding and `kiln topo` agree on every fixture: GPU count and placements.
func TestTopologyMatchesTheCLI(t *testing.T) {
	cliPath := kilnCLI(t)
	if cliPath == "" {
		t.Skip("no kiln CLI: set KILN_CLI (CTest does) or build build/tools/kiln")
	}
	for _, name := range []string{"pcie-8gpu-2socket", "dgx-h100-8gpu", "h100-x1-vm", "h100-x2-vm"} {
		dir := fixture(name)
		report, err := Topology(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var cliReport struct {
			GPUs []struct {
				UUID string `json:"uuid"`
			} `json:"gpus"`
		}
		runJSON(t, cliPath, &cliReport, "topo", "--json", "--fixture", dir)
		if len(report.GPUs) != len(cliReport.GPUs) {
			t.Fatalf("%s: %d GPUs from Go, %d from the CLI", name, len(report.GPUs), len(cliReport.GPUs))
		}
		var whole TopologyReport
		runJSON(t, cliPath, &whole, "topo", "--json", "--fixture", dir)
		whole.fixtureDir = report.fixtureDir
		if !reflect.DeepEqual(&whole, report) {
			t.Errorf("%s: the CLI's topology differs from the library's:\nGo  %+v\nCLI %+v", name, report, whole)
		}
		for k := 1; k <= len(report.GPUs); k++ {
			var cli struct{ Placement Placement }
			runJSON(t, cliPath, &cli, "topo", "--fixture", dir, "--choose", strconv.Itoa(k), "--json")
			p, err := report.Choose(k, 0)
			if err != nil {
				t.Fatalf("%s choose %d: %v", name, k, err)
			}
			if !reflect.DeepEqual(*p, cli.Placement) {
				t.Errorf("%s choose %d:\nGo  %+v\nCLI %+v", name, k, *p, cli.Placement)
			}
		}
	}
}

func runJSON(t *testing.T, cli string, into any, args ...string) {
	t.Helper()
	cmd := exec.Command(cli, args...)
	cmd.Env = os.Environ()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", cli, args, err)
	}
	if err := json.Unmarshal(out, into); err != nil {
		t.Fatalf("%s %v printed what is not JSON: %v\n%s", cli, args, err, out)
	}
}
