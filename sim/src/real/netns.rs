//! A network of its own for a real run: every JobManager and TaskManager process in a network
//! namespace of its own, joined by a veth pair to a bridge in the harness's namespace, where
//! the external systems listen on addresses of their own. Partitions are nftables rules inside
//! the namespaces, so they cut real TCP traffic between real processes, both ways or one way
//! and per link, and heal by taking the rules away.
//!
//! Packet loss is an nftables rule too (a random draw per packet sent by a process); latency
//! would need netem, which this machine's kernel lacks (`tc qdisc ... netem`: "Specified qdisc
//! kind is unknown").
//!
//! It needs root, `ip` (iproute2) and `nft` (nftables). Where any is missing [`Network::create`]
//! says why, the run goes on loopback, and partition faults are reported not applied with that
//! reason. A one-way cut of TCP stops both directions of every connection across it in practice
//! (acknowledgements cross it too), as it does between real machines.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fault::{Direction, FaultKind};
use crate::node::NodeName;

/// One run's namespaces, bridge and addresses.
pub struct Network {
    /// Distinguishes this run's bridge, namespaces and subnet from another run's.
    tag: u8,
    bridge: String,
    namespaces: BTreeMap<NodeName, String>,
    addresses: BTreeMap<NodeName, Ipv4Addr>,
}

/// The external systems, which live on the bridge with an address each.
const SERVICES: [NodeName; 3] = [
    NodeName::SourceLog,
    NodeName::SinkStore,
    NodeName::CheckpointStore,
];

impl Network {
    /// Creates a namespace for each of `processes` and addresses for them and the external
    /// systems; an error says why it cannot (no root, no `ip`, no `nft`).
    pub fn create(processes: &[NodeName]) -> Result<Network, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("network namespaces need root".into());
        }
        for tool in ["ip", "nft"] {
            if !on_path(tool) {
                return Err(format!(
                    "`{tool}` is not installed (Debian: iproute2, nftables)"
                ));
            }
        }
        let tag = (std::process::id() % 200) as u8 + 20;
        let mut net = Network {
            tag,
            bridge: format!("rillbr{tag}"),
            namespaces: BTreeMap::new(),
            addresses: BTreeMap::new(),
        };
        // What an earlier run of the same tag left behind (it was killed) goes first.
        net.remove();
        run("ip", &["link", "add", &net.bridge, "type", "bridge"])?;
        run("ip", &["link", "set", &net.bridge, "up"])?;
        // The harness's own address comes first: the kernel sends from a device's first
        // address, so the client's connections to the JobManager come from it, not from an
        // external system's (whose partitions would cut the client too).
        let client = net.ip(1);
        run(
            "ip",
            &["addr", "add", &format!("{client}/24"), "dev", &net.bridge],
        )?;
        net.addresses.insert(NodeName::Client, client);
        for (i, service) in SERVICES.iter().enumerate() {
            let ip = net.ip(2 + i as u8);
            run(
                "ip",
                &["addr", "add", &format!("{ip}/24"), "dev", &net.bridge],
            )?;
            net.addresses.insert(service.clone(), ip);
        }
        for (i, node) in processes.iter().enumerate() {
            net.add_namespace(node, 10 + i as u8)?;
        }
        Ok(net)
    }

    fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.tag, host)
    }

    fn add_namespace(&mut self, node: &NodeName, host: u8) -> Result<(), String> {
        let ns = format!("rill{}-{node}", self.tag);
        let (outside, inside) = (
            format!("rv{}h{host}", self.tag),
            format!("rv{}n{host}", self.tag),
        );
        let ip = self.ip(host);
        run("ip", &["netns", "add", &ns])?;
        self.namespaces.insert(node.clone(), ns.clone());
        run(
            "ip",
            &[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ],
        )?;
        run("ip", &["link", "set", &inside, "netns", &ns])?;
        run("ip", &["link", "set", &outside, "master", &self.bridge])?;
        run("ip", &["link", "set", &outside, "up"])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "ip"];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        in_ns(&["addr", "add", &format!("{ip}/24"), "dev", &inside])?;
        in_ns(&["link", "set", &inside, "up"])?;
        in_ns(&["link", "set", "lo", "up"])?;
        self.addresses.insert(node.clone(), ip);
        Ok(())
    }

    /// The address `node` listens on (a process node's namespace, or an external system's
    /// address on the bridge).
    pub fn address(&self, node: &NodeName) -> Option<Ipv4Addr> {
        self.addresses.get(node).copied()
    }

    /// `program` with `args`, run inside `node`'s namespace: `ip netns exec` execs it, so the
    /// child's pid is the program's and signals reach it.
    pub fn wrap(
        &self,
        node: &NodeName,
        program: &Path,
        args: Vec<OsString>,
    ) -> (PathBuf, Vec<OsString>) {
        match self.namespaces.get(node) {
            Some(ns) => {
                let mut all: Vec<OsString> = vec!["netns".into(), "exec".into(), ns.into()];
                all.push(program.as_os_str().to_owned());
                all.extend(args);
                (PathBuf::from("ip"), all)
            }
            None => (program.to_path_buf(), args),
        }
    }

    /// Installs the rules that the active partition faults `active` call for, in every
    /// namespace (the rules are recomputed whole, so overlapping faults compose and healing
    /// one leaves the others).
    pub fn apply(&self, active: &[&FaultKind]) -> Result<(), String> {
        for (node, ns) in &self.namespaces {
            let (input, output) = self.rules_for(node, active);
            let ruleset = format!(
                "flush ruleset\ntable inet rill {{\n  chain input {{ type filter hook input priority 0; policy accept; iifname \"lo\" accept;\n{input}  }}\n  chain output {{ type filter hook output priority 0; policy accept; oifname \"lo\" accept;\n{output}  }}\n}}\n"
            );
            let mut child = Command::new("ip")
                .args(["netns", "exec", ns, "nft", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("nft: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(ruleset.as_bytes())
                    .map_err(|e| format!("nft: {e}"))?;
            }
            let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "nft in {ns}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok(())
    }

    /// The input and output rules of `node`'s namespace.
    fn rules_for(&self, node: &NodeName, active: &[&FaultKind]) -> (String, String) {
        let (mut input, mut output, mut loss) = (String::new(), String::new(), 0f64);
        let mut cut = |from: &NodeName, to: &NodeName| {
            // A cut is made where a process sends (its output) or, for traffic from the
            // harness's systems, where it receives.
            if from == node {
                if let Some(ip) = self.address(to) {
                    output += &format!("    ip daddr {ip} drop\n");
                }
            } else if to == node && !self.namespaces.contains_key(from) {
                if let Some(ip) = self.address(from) {
                    input += &format!("    ip saddr {ip} drop\n");
                }
            }
        };
        for kind in active {
            match kind {
                FaultKind::Partition {
                    target, direction, ..
                } => {
                    let (inbound, outbound) = match direction {
                        Direction::Both => (true, true),
                        Direction::Inbound => (true, false),
                        Direction::Outbound => (false, true),
                    };
                    for other in self.addresses.keys().filter(|n| *n != target) {
                        if inbound {
                            cut(other, target);
                        }
                        if outbound {
                            cut(target, other);
                        }
                    }
                }
                FaultKind::LinkPartition {
                    from,
                    to,
                    both_ways,
                    ..
                } => {
                    cut(from, to);
                    if *both_ways {
                        cut(to, from);
                    }
                }
                // Loss is judged as the simulator's: the highest active rate (below).
                FaultKind::PacketLoss { rate, .. } => loss = loss.max(*rate),
                _ => {}
            }
        }
        // Every packet a process sends, and every packet the harness's systems send it, is
        // lost with the rate: netem is missing, but nftables draws a random number per packet.
        let per_10k = (loss.clamp(0.0, 1.0) * 10_000.0).round() as u32;
        let drop = match per_10k {
            0 => None,
            10_000.. => Some("drop".to_string()),
            n => Some(format!("numgen random mod 10000 < {n} drop")),
        };
        if let Some(drop) = drop {
            output += &format!("    {drop}\n");
            for ip in SERVICES.iter().filter_map(|s| self.address(s)) {
                input += &format!("    ip saddr {ip} {drop}\n");
            }
        }
        (input, output)
    }

    /// Whether a cut between `from` and `to` can be made here: one of them must be a process
    /// in a namespace (the external systems share the harness's namespace).
    pub fn can_cut(&self, from: &NodeName, to: &NodeName) -> bool {
        (self.namespaces.contains_key(from) || self.namespaces.contains_key(to))
            && self.addresses.contains_key(from)
            && self.addresses.contains_key(to)
    }

    fn remove(&self) {
        let prefix = format!("rill{}-", self.tag);
        if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let ns = line.split_whitespace().next().unwrap_or_default();
                if ns.starts_with(&prefix) {
                    let _ = run("ip", &["netns", "del", ns]);
                }
            }
        }
        // Deleting a namespace deletes its veth pair, unless a process left behind keeps the
        // namespace alive: the host ends go by name, and the bridge on its own.
        let host_prefix = format!("rv{}h", self.tag);
        if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split(':').nth(1).unwrap_or_default().trim();
                let name = name.split('@').next().unwrap_or_default();
                if name.starts_with(&host_prefix) {
                    let _ = run("ip", &["link", "del", name]);
                }
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .any(|dir| dir.join(tool).is_file())
    })
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A network's bookkeeping without namespaces behind it (tag 250 is never a run's).
    fn fake() -> Network {
        let mut net = Network {
            tag: 250,
            bridge: "rillbr250".into(),
            namespaces: BTreeMap::new(),
            addresses: BTreeMap::new(),
        };
        net.addresses.insert(NodeName::Client, net.ip(1));
        for (i, s) in SERVICES.iter().enumerate() {
            net.addresses.insert(s.clone(), net.ip(2 + i as u8));
        }
        for (i, n) in [
            NodeName::JobManager,
            NodeName::TaskManager(1),
            NodeName::TaskManager(2),
        ]
        .iter()
        .enumerate()
        {
            net.namespaces.insert(n.clone(), format!("rill250-{n}"));
            net.addresses.insert(n.clone(), net.ip(10 + i as u8));
        }
        net
    }

    fn partition(target: NodeName, direction: Direction) -> FaultKind {
        FaultKind::Partition {
            target,
            direction,
            heal_after: Some(Duration::from_secs(1)),
        }
    }

    #[test]
    fn a_partition_is_cut_where_processes_send_and_where_systems_reach_them() {
        let net = fake();
        let tm1 = partition(NodeName::TaskManager(1), Direction::Both);
        // tm-1 sends to no one and takes nothing from the harness on the bridge.
        let (input, output) = net.rules_for(&NodeName::TaskManager(1), &[&tm1]);
        assert_eq!(output.matches("drop").count(), 6, "{output}");
        assert_eq!(input.matches("saddr").count(), 4, "{input}");
        // The JobManager no longer sends to tm-1 (10.77.250.11), and nothing else.
        let (input, output) = net.rules_for(&NodeName::JobManager, &[&tm1]);
        assert_eq!(output, "    ip daddr 10.77.250.11 drop\n");
        assert!(input.is_empty());
        // One way in: tm-1 still sends.
        let inbound = partition(NodeName::TaskManager(1), Direction::Inbound);
        let (_, output) = net.rules_for(&NodeName::TaskManager(1), &[&inbound]);
        assert!(output.is_empty(), "{output}");
    }

    #[test]
    fn links_systems_and_loss_get_their_rules_and_healing_takes_them_away() {
        let net = fake();
        let link = FaultKind::LinkPartition {
            from: NodeName::TaskManager(2),
            to: NodeName::SinkStore,
            both_ways: false,
            heal_after: None,
        };
        let (input, output) = net.rules_for(&NodeName::TaskManager(2), &[&link]);
        assert_eq!(output, "    ip daddr 10.77.250.3 drop\n");
        assert!(input.is_empty());
        let store = partition(NodeName::CheckpointStore, Direction::Outbound);
        let (input, _) = net.rules_for(&NodeName::JobManager, &[&store]);
        assert_eq!(input, "    ip saddr 10.77.250.4 drop\n");
        let loss = |rate| FaultKind::PacketLoss {
            rate,
            duration: None,
        };
        // Overlapping losses: the highest rate, as the simulator has it, both ways.
        let (input, output) = net.rules_for(&NodeName::JobManager, &[&loss(0.05), &loss(0.01)]);
        assert_eq!(output, "    numgen random mod 10000 < 500 drop\n");
        assert_eq!(
            input.matches("numgen random mod 10000 < 500 drop").count(),
            3
        );
        let (_, output) = net.rules_for(&NodeName::JobManager, &[&loss(1.0)]);
        assert_eq!(output, "    drop\n");
        let (input, output) = net.rules_for(&NodeName::TaskManager(2), &[]);
        assert!(input.is_empty() && output.is_empty());
        assert!(net.can_cut(&NodeName::TaskManager(1), &NodeName::SinkStore));
        assert!(!net.can_cut(&NodeName::SinkStore, &NodeName::SourceLog));
    }
}
