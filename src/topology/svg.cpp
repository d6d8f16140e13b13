// The machine drawn as a tree, one column per NUMA node: NUMA node → root complex → root port →
// PCIe switches → GPUs on one row, NVSwitches on a row below, direct NVLinks as arcs. Leaves are
// spaced evenly and each parent sits above the middle of its children, so no edges cross.
#include "kiln/topology/svg.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::topology {
namespace {

constexpr double kColumn = 170;   // width per GPU
constexpr double kRow = 110;      // height per tree level
constexpr double kBoxW = 150;
constexpr double kBoxH = 58;
constexpr double kMargin = 30;

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t') out += c;  // no control characters in XML 1.0
    }
  }
  return out;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string pcie_label(const PcieLinkStatus& l) {
  if (l.current_gts <= 0 || l.current_width <= 0) return "PCIe";
  std::string s = "PCIe Gen" + std::to_string(PcieLinkStatus::generation(l.current_gts)) + " x" +
                  std::to_string(l.current_width);
  if (l.max_width > l.current_width || l.max_gts > l.current_gts)
    s += " (max Gen" + std::to_string(PcieLinkStatus::generation(l.max_gts)) + " x" + std::to_string(l.max_width) + ")";
  return s;
}

struct Node {
  std::string key;
  std::vector<std::string> lines;  // first line bold
  std::string fill;
  std::string edge_label;          // on the edge to the parent
  std::vector<std::size_t> children;
  int depth = 0;
  double x = 0, y = 0;
};

class Tree {
 public:
  Tree() { nodes_.push_back({"machine", {}, "", "", {}, -1, 0, 0}); }

  std::size_t child(std::size_t parent, const std::string& key, std::vector<std::string> lines, std::string fill,
                    std::string edge_label) {
    if (auto it = index_.find(key); it != index_.end()) return it->second;
    nodes_.push_back({key, std::move(lines), std::move(fill), std::move(edge_label), {}, nodes_[parent].depth + 1, 0, 0});
    const std::size_t id = nodes_.size() - 1;
    nodes_[parent].children.push_back(id);
    index_[key] = id;
    return id;
  }
  std::vector<Node>& nodes() { return nodes_; }

 private:
  std::vector<Node> nodes_;
  std::map<std::string, std::size_t> index_;
};

void box(std::ostringstream& out, const Node& n) {
  out << "  <g class=\"node\">\n    <rect x=\"" << num(n.x - kBoxW / 2) << "\" y=\"" << num(n.y) << "\" width=\""
      << num(kBoxW) << "\" height=\"" << num(kBoxH) << "\" rx=\"6\" fill=\"" << n.fill
      << "\" stroke=\"#333\"/>\n    <text x=\"" << num(n.x) << "\" y=\"" << num(n.y + 16)
      << "\" text-anchor=\"middle\">";
  for (std::size_t i = 0; i < n.lines.size(); ++i)
    out << "<tspan x=\"" << num(n.x) << "\" dy=\"" << (i == 0 ? "0" : "14") << "\"" << (i == 0 ? " font-weight=\"bold\"" : "")
        << ">" << escape(n.lines[i]) << "</tspan>";
  out << "</text>\n  </g>\n";
}

void edge(std::ostringstream& out, double x1, double y1, double x2, double y2, const std::string& label,
          const std::string& color, double label_at = 0.5) {
  out << "  <line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2) << "\" y2=\"" << num(y2)
      << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>\n";
  if (label.empty()) return;
  const double lx = x1 + (x2 - x1) * label_at, ly = y1 + (y2 - y1) * label_at;
  out << "  <text x=\"" << num(lx + 4) << "\" y=\"" << num(ly + 4) << "\" font-size=\"10\" fill=\"" << color
      << "\" stroke=\"white\" stroke-width=\"3\" paint-order=\"stroke\">" << escape(label) << "</text>\n";
}

}  // namespace

std::string render_svg(const Topology& topology) {
  Tree tree;
  const auto& gpus = topology.gpus();
  std::vector<std::size_t> gpu_node(gpus.size());
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    const Gpu& g = gpus[i];
    std::string numa_key = "numa:" + (g.numa_affinity.empty() ? std::string("?") : g.numa_affinity.to_string());
    std::string cpus;
    for (const auto& n : topology.numa_nodes())
      if (g.numa_affinity.contains(n.id)) {
        if (!cpus.empty()) cpus += ',';
        cpus += n.cpus.to_string();
      }
    std::size_t parent = tree.child(
        0, numa_key,
        {g.numa_affinity.empty() ? "NUMA node ?" : "NUMA node " + g.numa_affinity.to_string(),
         "CPUs " + (cpus.empty() ? g.cpus.to_string() : cpus)},
        "#e8eef8", "");
    parent = tree.child(parent, "hb:" + g.host_bridge, {"Root complex", g.host_bridge}, "#f3e9d8", "host bridge");
    // Root port first; a switch's downstream port is folded into the switch, its link labels the edge below.
    std::string pending_label;
    for (std::size_t u = g.upstream.size(); u-- > 0;) {
      const PciBridge& b = g.upstream[u];
      const std::string addr = b.address.to_string();
      if (b.role == BridgeRole::root_port) {
        parent = tree.child(parent, "br:" + addr, {"Root port", addr}, "#f3e9d8", "");
        pending_label = pcie_label(b.link);
      } else if (b.role == BridgeRole::switch_upstream) {
        parent = tree.child(parent, "br:" + addr, {"PCIe switch", addr + (b.device_id.empty() ? "" : " " + b.device_id)},
                            "#fdf6d8", pending_label.empty() ? pcie_label(b.link) : pending_label);
      } else {
        pending_label = pcie_label(b.link);
      }
    }
    std::vector<std::string> lines{"GPU" + std::to_string(i) +
                                       (g.cuda_ordinal ? "  (CUDA " + std::to_string(*g.cuda_ordinal) + ")" : ""),
                                   g.name, g.pci.to_string(), g.uuid.substr(0, std::min<std::size_t>(g.uuid.size(), 17)) + "…"};
    gpu_node[i] = tree.child(parent, "gpu:" + std::to_string(i), lines, "#dff3df", pcie_label(g.link));
  }

  // Leaves spread evenly (GPUs share the bottom row); parents centred over their children.
  auto& nodes = tree.nodes();
  int max_depth = 0;
  for (const auto& n : nodes) max_depth = std::max(max_depth, n.depth);
  double next_x = kMargin + kColumn / 2;
  auto place = [&](auto& self, std::size_t id) -> void {
    Node& n = nodes[id];
    if (n.children.empty()) {
      n.x = next_x;
      next_x += kColumn;
    } else {
      for (std::size_t c : n.children) self(self, c);
      n.x = (nodes[n.children.front()].x + nodes[n.children.back()].x) / 2;
    }
  };
  place(place, 0);
  for (auto& n : nodes) n.y = kMargin + 30 + n.depth * kRow;
  for (std::size_t i = 0; i < gpus.size(); ++i) nodes[gpu_node[i]].y = kMargin + 30 + max_depth * kRow;

  // NVSwitches (the far end of switch links), each with the links every GPU has to it.
  std::vector<std::string> switches;
  for (const auto& g : gpus)
    for (const auto& l : g.nvlinks)
      if (l.remote_type == NvLinkPeerType::switch_ &&
          std::find(switches.begin(), switches.end(), l.remote_pci_bus_id) == switches.end())
        switches.push_back(l.remote_pci_bus_id);
  std::sort(switches.begin(), switches.end());
  // Wide enough for the title line even with one GPU.
  const double width = std::max(next_x - kColumn / 2 + kMargin, 720.0);
  const double gpu_bottom = kMargin + 30 + max_depth * kRow + kBoxH;
  const double switch_y = gpu_bottom + 150;
  double height = (switches.empty() ? gpu_bottom : switch_y + kBoxH) + 40;

  // Direct GPU–GPU NVLinks: arcs below the GPU row, deeper for farther pairs.
  struct Arc { std::size_t a, b; int links; };
  std::vector<Arc> arcs;
  for (std::size_t a = 0; a < gpus.size(); ++a)
    for (std::size_t b = a + 1; b < gpus.size(); ++b) {
      int n = 0;
      for (const auto& l : gpus[a].nvlinks)
        if (l.remote_type == NvLinkPeerType::gpu && l.remote_pci_bus_id == gpus[b].pci.to_string()) ++n;
      if (n > 0) arcs.push_back({a, b, n});
    }
  double arc_depth = 0;
  for (const auto& arc : arcs) arc_depth = std::max(arc_depth, 30.0 + 20.0 * static_cast<double>(arc.b - arc.a));
  if (switches.empty()) height += arc_depth;

  std::ostringstream out;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << num(width) << "\" height=\""
      << num(height) << "\" viewBox=\"0 0 " << num(width) << " " << num(height)
      << "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">\n"
      << "  <title>GPU topology (" << gpus.size() << " GPUs)</title>\n"
      << "  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "  <text x=\"" << num(kMargin) << "\" y=\"" << num(kMargin) << "\" font-size=\"14\" font-weight=\"bold\">"
      << escape("GPU topology: " + std::to_string(gpus.size()) + " GPUs, " +
                std::to_string(topology.numa_nodes().size()) + " NUMA nodes" +
                (topology.facts().source.empty() ? "" : " (" + topology.facts().source + ")"))
      << "</text>\n";

  // NUMA nodes joined by the SMP interconnect.
  const auto& numa_ids = nodes[0].children;
  for (std::size_t i = 0; i + 1 < numa_ids.size(); ++i) {
    const Node& a = nodes[numa_ids[i]];
    const Node& b = nodes[numa_ids[i + 1]];
    edge(out, a.x + kBoxW / 2, a.y + kBoxH / 2, b.x - kBoxW / 2, b.y + kBoxH / 2, "SMP interconnect (UPI/xGMI)",
         "#555", 0.1);
  }
  for (std::size_t id = 1; id < nodes.size(); ++id)
    for (std::size_t c : nodes[id].children)
      edge(out, nodes[id].x, nodes[id].y + kBoxH, nodes[c].x, nodes[c].y, nodes[c].edge_label, "#555");
  for (std::size_t s = 0; s < switches.size(); ++s) {
    const double sx = kMargin + kBoxW / 2 + (width - 2 * kMargin - kBoxW) * (switches.size() == 1 ? 0.5 : double(s) / double(switches.size() - 1));
    for (std::size_t i = 0; i < gpus.size(); ++i) {
      int n = 0;
      for (const auto& l : gpus[i].nvlinks)
        if (l.remote_type == NvLinkPeerType::switch_ && l.remote_pci_bus_id == switches[s]) ++n;
      if (n > 0)
        edge(out, nodes[gpu_node[i]].x, gpu_bottom, sx, switch_y, "NVLink ×" + std::to_string(n), "#2a7a2a", 0.18 + 0.12 * double(s % 3));
    }
    Node sw{"nvswitch", {"NVSwitch", switches[s]}, "#d8f0e8", "", {}, 0, sx, switch_y};
    box(out, sw);
  }
  for (const auto& arc : arcs) {
    const double x1 = nodes[gpu_node[arc.a]].x, x2 = nodes[gpu_node[arc.b]].x;
    const double depth = 30.0 + 20.0 * static_cast<double>(arc.b - arc.a);
    out << "  <path d=\"M " << num(x1) << " " << num(gpu_bottom) << " Q " << num((x1 + x2) / 2) << " "
        << num(gpu_bottom + 2 * depth) << " " << num(x2) << " " << num(gpu_bottom)
        << "\" fill=\"none\" stroke=\"#2a7a2a\" stroke-width=\"2\"/>\n"
        << "  <text x=\"" << num((x1 + x2) / 2) << "\" y=\"" << num(gpu_bottom + depth + 4)
        << "\" font-size=\"10\" fill=\"#2a7a2a\" text-anchor=\"middle\" stroke=\"white\" stroke-width=\"3\" "
           "paint-order=\"stroke\">NV"
        << arc.links << "</text>\n";
  }
  for (std::size_t id = 1; id < nodes.size(); ++id) box(out, nodes[id]);
  out << "</svg>\n";
  return out.str();
}

// The picture of a machine kiln could not see: the reason, wrapped at about 90 characters a line.
std::string render_unavailable_svg(std::string_view why) {
  std::string reason(why);
  std::replace(reason.begin(), reason.end(), '\n', ' ');
  std::vector<std::string> lines{"No topology to show"};
  std::string line;
  std::size_t start = 0;
  while (start < reason.size()) {
    std::size_t end = reason.find(' ', start);
    if (end == std::string::npos) end = reason.size();
    const std::string word = reason.substr(start, end - start);
    if (!line.empty() && line.size() + word.size() + 1 > 90) {
      lines.push_back(line);
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) lines.push_back(line);
  const std::size_t height = 30 + 18 * lines.size();
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"640\" height=\"" +
                    std::to_string(height) + "\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n" +
                    "  <rect x=\"0.5\" y=\"0.5\" width=\"639\" height=\"" + std::to_string(height - 1) +
                    "\" fill=\"#f6f6f6\" stroke=\"#999\"/>\n";
  for (std::size_t i = 0; i < lines.size(); ++i)
    svg += "  <text x=\"12\" y=\"" + std::to_string(24 + 18 * i) + "\"" + (i == 0 ? " font-weight=\"bold\"" : "") + ">" +
           escape(lines[i]) + "</text>\n";
  return svg + "</svg>\n";
}

}  // namespace kiln::topology
