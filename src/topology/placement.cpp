#include "kiln/topology/placement.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

#include "kiln/driver/error.hpp"

namespace kiln::topology {
namespace {

// Exhaustive search up to this many candidate sets; beyond it (dozens of GPUs) a greedy growth
// from every seed, which finds the NVLink/switch/NUMA domains just as well in practice.
constexpr double kMaxExhaustiveSets = 200000;

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1024.0 * 1024 * 1024));
  return buf;
}

// Lower is better: link type first, then more NVLinks.
int link_cost(const Link& l) { return static_cast<int>(l.type) * 1000 + (l.type == LinkType::nvlink ? 999 - l.nvlinks : 0); }

struct Candidate {
  std::size_t index;
  std::uint64_t free;
  double load;
};

struct Score {
  int worst = 0;          // the slowest pair's cost
  long total = 0;         // all pairs' costs
  std::uint64_t free = 0; // summed free memory (more is better)
  double load = 0;        // summed load (less is better)

  // Interconnect first; free memory and load only break ties.
  bool same_interconnect(const Score& o) const { return worst == o.worst && total == o.total; }
  bool better_than(const Score& o) const {
    if (worst != o.worst) return worst < o.worst;
    if (total != o.total) return total < o.total;
    if (free != o.free) return free > o.free;
    return load < o.load;
  }
};

Score score(const Topology& t, const std::vector<Candidate>& c, const std::vector<std::size_t>& set) {
  Score s;
  for (std::size_t i = 0; i < set.size(); ++i) {
    s.free += c[set[i]].free;
    s.load += c[set[i]].load;
    for (std::size_t j = i + 1; j < set.size(); ++j) {
      const int cost = link_cost(t.link(c[set[i]].index, c[set[j]].index));
      s.worst = std::max(s.worst, cost);
      s.total += cost;
    }
  }
  return s;
}

double combinations(std::size_t n, std::size_t k) {
  double r = 1;
  for (std::size_t i = 1; i <= k; ++i) r = r * static_cast<double>(n - k + i) / static_cast<double>(i);
  return r;
}

struct Search {
  std::vector<std::size_t> best;
  Score best_score;
  int ties = 0;  // other sets with the same interconnect as the best
  void consider(const Topology& t, const std::vector<Candidate>& c, const std::vector<std::size_t>& set) {
    const Score s = score(t, c, set);
    if (best.empty() || s.better_than(best_score)) {
      ties = !best.empty() && s.same_interconnect(best_score) ? ties + 1 : 0;
      best = set;
      best_score = s;
    } else if (s.same_interconnect(best_score)) {
      ++ties;
    }
  }
};

void exhaustive(const Topology& t, const std::vector<Candidate>& c, std::size_t k, Search& search) {
  std::vector<std::size_t> set(k);
  for (std::size_t i = 0; i < k; ++i) set[i] = i;
  while (true) {
    search.consider(t, c, set);
    std::size_t i = k;
    while (i > 0 && set[i - 1] == c.size() - k + (i - 1)) --i;
    if (i == 0) return;
    ++set[i - 1];
    for (std::size_t j = i; j < k; ++j) set[j] = set[j - 1] + 1;
  }
}

void greedy(const Topology& t, const std::vector<Candidate>& c, std::size_t k, Search& search) {
  for (std::size_t seed = 0; seed < c.size(); ++seed) {
    std::vector<std::size_t> set{seed};
    while (set.size() < k) {
      std::size_t pick = c.size();
      Score pick_score;
      for (std::size_t x = 0; x < c.size(); ++x) {
        if (std::find(set.begin(), set.end(), x) != set.end()) continue;
        auto trial = set;
        trial.push_back(x);
        const Score s = score(t, c, trial);
        if (pick == c.size() || s.better_than(pick_score)) {
          pick = x;
          pick_score = s;
        }
      }
      set.push_back(pick);
    }
    std::sort(set.begin(), set.end());
    search.consider(t, c, set);
  }
}

std::string describe(const Topology& t, const std::vector<std::size_t>& chosen, const Link& worst) {
  const std::string n = std::to_string(chosen.size()) + " GPUs";
  const Gpu& first = t.gpus()[chosen.front()];
  switch (worst.type) {
    case LinkType::self: return "a single GPU";
    case LinkType::nvlink: return n + " all joined by NVLink (slowest pair " + worst.to_string() + ")";
    case LinkType::pix: return n + " under one PCIe switch (PIX)";
    case LinkType::pxb: return n + " below one PCIe root port (PXB, several switches)";
    case LinkType::phb: return n + " within one root complex, " + first.host_bridge + " (PHB)";
    case LinkType::node:
      return n + " within NUMA node " + (first.numa_affinity.empty() ? "?" : first.numa_affinity.to_string()) +
             " (NODE)";
    case LinkType::sys: return n + " spanning NUMA nodes (SYS): no single node holds enough eligible GPUs";
  }
  return n;
}

}  // namespace

Placement choose(const Topology& topology, std::size_t k, const PlacementConstraints& constraints) {
  if (k == 0) throw Error(Errc::invalid_argument, "choose: k must be at least 1");
  std::vector<Candidate> candidates;
  std::vector<std::string> left_out;
  for (std::size_t i = 0; i < topology.gpus().size(); ++i) {
    const Gpu& g = topology.gpus()[i];
    const std::string bus = g.pci.to_string();
    const std::string label = g.uuid + " (" + bus + ")";
    if (std::any_of(constraints.exclude.begin(), constraints.exclude.end(),
                    [&](const std::string& x) { return x == g.uuid || PciAddress::parse(x) == g.pci; })) {
      left_out.push_back(label + " excluded");
      continue;
    }
    if (constraints.numa_node && !g.numa_affinity.contains(*constraints.numa_node)) {
      left_out.push_back(label + " not local to NUMA node " + std::to_string(*constraints.numa_node));
      continue;
    }
    // Free memory: the caller's figure, else the facts', else (never measured) the total.
    std::uint64_t free = g.memory_free.value_or(g.memory_total);
    if (auto it = constraints.free_memory.find(g.uuid); it != constraints.free_memory.end()) free = it->second;
    if (free < constraints.min_free_memory) {
      left_out.push_back(label + " has " + gib(free) + " free");
      continue;
    }
    const auto load = constraints.load.find(g.uuid);
    candidates.push_back({i, free, load == constraints.load.end() ? 0.0 : load->second});
  }
  if (candidates.size() < k) {
    std::string why;
    for (const auto& l : left_out) why += (why.empty() ? "" : "; ") + l;
    throw Error(Errc::invalid_argument,
                "choose: " + std::to_string(k) + " GPUs wanted with at least " + gib(constraints.min_free_memory) +
                    " free, but only " + std::to_string(candidates.size()) + " of " +
                    std::to_string(topology.gpus().size()) + " qualify" + (why.empty() ? "" : ": " + why));
  }

  Search search;
  if (combinations(candidates.size(), k) <= kMaxExhaustiveSets)
    exhaustive(topology, candidates, k, search);
  else
    greedy(topology, candidates, k, search);

  Placement p;
  std::vector<std::size_t> chosen;
  for (std::size_t c : search.best) chosen.push_back(candidates[c].index);
  std::sort(chosen.begin(), chosen.end(),
            [&](std::size_t a, std::size_t b) { return topology.gpus()[a].pci < topology.gpus()[b].pci; });
  p.worst_link = {LinkType::self, 0};
  for (std::size_t a : chosen)
    for (std::size_t b : chosen)
      if (p.worst_link.better_than(topology.link(a, b))) p.worst_link = topology.link(a, b);
  for (std::size_t i : chosen) {
    const Gpu& g = topology.gpus()[i];
    p.gpus.push_back({g.uuid, g.pci.to_string(), g.cuda_ordinal, i});
  }
  p.reason = describe(topology, chosen, p.worst_link) + "; chosen among " + std::to_string(candidates.size()) +
             " eligible of " + std::to_string(topology.gpus().size()) + " GPUs";
  if (search.ties > 0)
    p.reason += "; " + std::to_string(search.ties) + " other set" + (search.ties > 1 ? "s" : "") +
                " equally connected, preferred for more free memory (" + gib(search.best_score.free) +
                ") then less load";
  return p;
}

}  // namespace kiln::topology
