//! Network faults on a [`NetLab`]: packet drops and random loss with
//! nftables, delay with `tc netem`, all inside the nodes' namespaces, so they
//! act on every packet a node sends or receives (Raft, the router's requests),
//! while the test's own requests from the host's bridge address pass (a
//! partitioned node still answers `/admin/status`). Node-wide loss and delay
//! are the exception: they act on everything leaving the node, the test's
//! answers included. Loss uses nftables (`numgen random`) rather than netem so
//! it works on kernels built without `sch_netem`; delay needs `sch_netem` (and
//! `sch_prio` per link) and answers [`FaultError::Unavailable`] without them.
//!
//! Drops are per packet, as a real cut is: a one-way cut of A -> B also stops
//! B's TCP connections to A from completing (A's answers are dropped), but B's
//! packets still reach A, which [`NetFaults::packets_received`] shows.
//!
//! Every fault adds to the current set; [`NetFaults::heal`] removes them all.
//! Each change rewrites a node's whole nftables table (`inet vdbfault`, one
//! atomic `nft -f`) and its whole qdisc tree, so a fault is never half set.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use parking_lot::Mutex;

use super::netns::{Member, NetLab};
use super::{run, FaultError};

/// nftables table of the faults in each node's namespace.
const TABLE: &str = "vdbfault";

/// Delay (`tc netem`) and loss (nftables) on a node's outgoing packets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Netem {
    pub delay: Duration,
    /// Uniform jitter around `delay` (netem reorders packets when it is set).
    pub jitter: Duration,
    /// Percentage of packets dropped, 0-100.
    pub loss_percent: f64,
}

impl Netem {
    /// The `tc` arguments of the delay part.
    fn args(&self) -> Vec<String> {
        let mut args = vec![
            "netem".to_owned(),
            "delay".to_owned(),
            format!("{}us", self.delay.as_micros()),
        ];
        if !self.jitter.is_zero() {
            args.push(format!("{}us", self.jitter.as_micros()));
        }
        args
    }

    fn delays(&self) -> bool {
        !self.delay.is_zero() || !self.jitter.is_zero()
    }

    /// The nftables statement of the loss part (`None`: no loss): drop when
    /// a random number in 0..10000 falls below the percentage in 1/100 %.
    fn loss_rule(&self) -> Option<String> {
        let per_10k = (self.loss_percent.clamp(0.0, 100.0) * 100.0).round() as u32;
        (per_10k > 0).then(|| format!("numgen random mod 10000 < {per_10k} drop"))
    }
}

/// Netem of one node: on everything it sends, and per destination.
#[derive(Debug, Default, Clone)]
struct NodeNetem {
    all: Option<Netem>,
    links: BTreeMap<Member, Netem>,
}

/// The faults in force.
#[derive(Debug, Default)]
struct State {
    /// (node, peer): the node's packets to the peer are dropped.
    drop_out: BTreeSet<(u64, Member)>,
    /// (node, peer): the peer's packets to the node are dropped.
    drop_in: BTreeSet<(u64, Member)>,
    netem: BTreeMap<u64, NodeNetem>,
}

/// The network faults of one cluster (see the module docs); the cluster
/// owns it ([`crate::Cluster::net`]) and drops it, with its lab, last.
#[derive(Debug)]
pub struct NetFaults {
    lab: NetLab,
    state: Mutex<State>,
}

/// prio bands of a qdisc tree: the default band plus at most 15 links.
const MAX_LINKS: usize = 15;

impl NetFaults {
    pub(crate) fn new(lab: NetLab) -> Result<NetFaults, FaultError> {
        let faults = NetFaults {
            lab,
            state: Mutex::new(State::default()),
        };
        // Load the (empty) table: the packet counters count from the start.
        faults.apply_rules(&faults.state.lock())?;
        Ok(faults)
    }

    pub fn lab(&self) -> &NetLab {
        &self.lab
    }

    fn nodes(&self) -> Vec<u64> {
        self.lab
            .members()
            .iter()
            .filter_map(|m| match m {
                Member::Node(id) => Some(*id),
                Member::Router(_) => None,
            })
            .collect()
    }

    fn check_node(&self, id: u64) -> Result<(), FaultError> {
        if self.nodes().contains(&id) {
            Ok(())
        } else {
            Err(FaultError::Invalid(format!("node {id} is not in the lab")))
        }
    }

    /// Splits the nodes into `sides` that cannot exchange a packet; nodes in
    /// no side form one more side together. E.g. `partition(&[&[1], &[2,
    /// 3]])`: node 1 (a minority) is cut from the majority 2, 3. Routers still
    /// reach every node. Heal: [`NetFaults::heal`].
    pub fn partition(&self, sides: &[&[u64]]) -> Result<(), FaultError> {
        let nodes = self.nodes();
        let mut side_of = BTreeMap::new();
        for (i, side) in sides.iter().enumerate() {
            for &id in side.iter() {
                self.check_node(id)?;
                if side_of.insert(id, i).is_some() {
                    return Err(FaultError::Invalid(format!("node {id} is in two sides")));
                }
            }
        }
        for &id in &nodes {
            side_of.entry(id).or_insert(sides.len());
        }
        let mut state = self.state.lock();
        for &a in &nodes {
            for &b in &nodes {
                if side_of[&a] != side_of[&b] {
                    cut(&mut state, a, Member::Node(b));
                }
            }
        }
        self.apply_rules(&state)
    }

    /// Jepsen's bridge: the other nodes split into two halves (by id) that
    /// cannot reach each other; `node` reaches both. Heal: [`NetFaults::heal`].
    pub fn bridge(&self, node: u64) -> Result<(), FaultError> {
        self.check_node(node)?;
        let others: Vec<u64> = self.nodes().into_iter().filter(|&n| n != node).collect();
        let (left, right) = others.split_at(others.len() / 2);
        let mut state = self.state.lock();
        for &a in left {
            for &b in right {
                cut(&mut state, a, Member::Node(b));
                cut(&mut state, b, Member::Node(a));
            }
        }
        self.apply_rules(&state)
    }

    /// Drops every packet `from` sends to `to`; `to`'s packets to `from`
    /// still arrive (see the module docs for what this does to TCP). Heal:
    /// [`NetFaults::heal`].
    pub fn one_way(&self, from: u64, to: u64) -> Result<(), FaultError> {
        self.check_node(from)?;
        self.check_node(to)?;
        let mut state = self.state.lock();
        state.drop_out.insert((from, Member::Node(to)));
        self.apply_rules(&state)
    }

    /// Router `router` can no longer reach `node` (both directions); every
    /// other router and node still can. Heal: [`NetFaults::heal`].
    pub fn cut_router(&self, router: usize, node: u64) -> Result<(), FaultError> {
        self.check_node(node)?;
        if !self.lab.members().contains(&Member::Router(router)) {
            return Err(FaultError::Invalid(format!(
                "router {router} is not in the lab"
            )));
        }
        let mut state = self.state.lock();
        cut(&mut state, node, Member::Router(router));
        self.apply_rules(&state)
    }

    /// Delay and loss on every packet `node` sends (to nodes, routers and
    /// the test); replaces an earlier netem of the node. Heal:
    /// [`NetFaults::heal`].
    pub fn netem(&self, node: u64, netem: Netem) -> Result<(), FaultError> {
        self.check_node(node)?;
        let mut state = self.state.lock();
        state.netem.entry(node).or_default().all = Some(netem);
        self.apply_rules(&state)?;
        self.apply_netem(node, &state)
    }

    /// Delay and loss on the packets `node` sends to `to` only (a node or a
    /// router); at most 15 links per node. Heal: [`NetFaults::heal`].
    pub fn netem_link(&self, node: u64, to: Member, netem: Netem) -> Result<(), FaultError> {
        self.check_node(node)?;
        if !self.lab.members().contains(&to) {
            return Err(FaultError::Invalid(format!("{to:?} is not in the lab")));
        }
        let mut state = self.state.lock();
        let links = &mut state.netem.entry(node).or_default().links;
        links.insert(to, netem);
        if links.len() > MAX_LINKS {
            links.remove(&to);
            return Err(FaultError::Invalid(format!(
                "node {node}: more than {MAX_LINKS} netem links"
            )));
        }
        self.apply_rules(&state)?;
        self.apply_netem(node, &state)
    }

    /// Removes every drop rule and every netem: all packets flow again.
    pub fn heal(&self) -> Result<(), FaultError> {
        let mut state = self.state.lock();
        let delayed: Vec<u64> = state.netem.keys().copied().collect();
        *state = State::default();
        self.apply_rules(&state)?;
        for node in delayed {
            self.apply_netem(node, &state)?;
        }
        Ok(())
    }

    /// Packets from `from` delivered to `node` (past its drop rules) since
    /// the last change of rules.
    pub fn packets_received(&self, node: u64, from: Member) -> Result<u64, FaultError> {
        self.counter(node, &format!("from_{}", member_tag(from)))
    }

    /// The packets of counter `name` in node `node`'s table.
    fn counter(&self, node: u64, name: &str) -> Result<u64, FaultError> {
        self.check_node(node)?;
        let ns = self.lab.namespace(Member::Node(node));
        let out = run(
            "ip",
            &[
                "netns", "exec", &ns, "nft", "list", "counter", "inet", TABLE, name,
            ],
            None,
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let packets = text
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok());
        packets.ok_or_else(|| FaultError::Invalid(format!("no packet count in `{text}`")))
    }

    /// Writes every node's table from `state`.
    fn apply_rules(&self, state: &State) -> Result<(), FaultError> {
        for node in self.nodes() {
            let ns = self.lab.namespace(Member::Node(node));
            let text = self.ruleset(node, state);
            run("ip", &["netns", "exec", &ns, "nft", "-f", "-"], Some(&text))?;
        }
        Ok(())
    }

    /// Packets `node` sent to `to` since the last change of rules (counted
    /// before its drop and loss rules).
    pub fn packets_sent(&self, node: u64, to: Member) -> Result<u64, FaultError> {
        self.counter(node, &format!("to_{}", member_tag(to)))
    }

    /// Node `node`'s table: in input, the drops, then a packet counter per
    /// lab member (what got through); in output, a counter per member (what
    /// the node sent), then the drops and the random loss.
    fn ruleset(&self, node: u64, state: &State) -> String {
        let ips = |set: &BTreeSet<(u64, Member)>| -> Vec<Ipv4Addr> {
            set.iter()
                .filter(|(n, _)| *n == node)
                .map(|(_, peer)| self.lab.ip(*peer))
                .collect()
        };
        let mut counters = String::new();
        let mut counting_in = String::new();
        let mut counting_out = String::new();
        for &m in self.lab.members() {
            let (from, to) = (
                format!("from_{}", member_tag(m)),
                format!("to_{}", member_tag(m)),
            );
            let ip = self.lab.ip(m);
            counters += &format!("  counter {from} {{}}\n  counter {to} {{}}\n");
            counting_in += &format!("    ip saddr {ip} counter name \"{from}\"\n");
            counting_out += &format!("    ip daddr {ip} counter name \"{to}\"\n");
        }
        let mut loss = String::new();
        if let Some(spec) = state.netem.get(&node) {
            for (to, netem) in &spec.links {
                if let Some(rule) = netem.loss_rule() {
                    loss += &format!("    ip daddr {} {rule}\n", self.lab.ip(*to));
                }
            }
            if let Some(rule) = spec.all.and_then(|n| n.loss_rule()) {
                loss += &format!("    {rule}\n");
            }
        }
        let drop_rule = |dir: &str, ips: Vec<Ipv4Addr>| -> String {
            if ips.is_empty() {
                return String::new();
            }
            let list: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
            format!("    ip {dir} {{ {} }} drop\n", list.join(", "))
        };
        // `add` then `delete` then define: replaces the table atomically
        // whether or not it existed.
        format!(
            "add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n{counters}\
             \x20 chain input {{\n    type filter hook input priority 0; policy accept;\n{}{counting_in}  }}\n\
             \x20 chain output {{\n    type filter hook output priority 0; policy accept;\n{counting_out}{}{loss}  }}\n}}\n",
            drop_rule("saddr", ips(&state.drop_in)),
            drop_rule("daddr", ips(&state.drop_out)),
        )
    }

    /// Rebuilds node `node`'s qdisc tree on its `eth0` from `state`.
    fn apply_netem(&self, node: u64, state: &State) -> Result<(), FaultError> {
        let ns = self.lab.namespace(Member::Node(node));
        let tc = |args: &[&str]| -> Result<(), FaultError> {
            let mut all = vec!["-n", ns.as_str()];
            all.extend_from_slice(args);
            run("tc", &all, None).map(drop).map_err(|e| match e {
                FaultError::Command { stderr, .. } if stderr.contains("kind is unknown") => {
                    FaultError::Unavailable(format!(
                        "the kernel has no netem or prio qdisc (CONFIG_NET_SCH_NETEM, \
                         CONFIG_NET_SCH_PRIO): {stderr}"
                    ))
                }
                e => e,
            })
        };
        // Back to the default qdisc (an error here: there was none of ours).
        let _ = tc(&["qdisc", "del", "dev", "eth0", "root"]);
        // Only the delays are qdiscs (loss is in the nftables table).
        let Some(spec) = state.netem.get(&node).map(|s| NodeNetem {
            all: s.all.filter(Netem::delays),
            links: s
                .links
                .iter()
                .filter(|(_, n)| n.delays())
                .map(|(m, n)| (*m, *n))
                .collect(),
        }) else {
            return Ok(());
        };
        if spec.all.is_none() && spec.links.is_empty() {
            return Ok(());
        }
        if spec.links.is_empty() {
            if let Some(all) = spec.all {
                let args = all.args();
                let mut cmd = vec!["qdisc", "add", "dev", "eth0", "root", "handle", "1:"];
                cmd.extend(args.iter().map(String::as_str));
                tc(&cmd)?;
            }
            return Ok(());
        }
        // prio: band 1:1 (every packet by default) gets the node-wide netem,
        // band 1:(k+2) link k's, chosen by destination address.
        let bands = (spec.links.len() + 1).max(2).to_string();
        let mut root = vec![
            "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "prio", "bands", &bands,
            "priomap",
        ];
        root.extend(std::iter::repeat_n("0", 16));
        tc(&root)?;
        if let Some(all) = spec.all {
            let args = all.args();
            let mut cmd = vec![
                "qdisc", "add", "dev", "eth0", "parent", "1:1", "handle", "10:",
            ];
            cmd.extend(args.iter().map(String::as_str));
            tc(&cmd)?;
        }
        for (k, (to, netem)) in spec.links.iter().enumerate() {
            let class = format!("1:{}", k + 2);
            let handle = format!("{}:", 20 + k);
            let args = netem.args();
            let mut cmd = vec![
                "qdisc", "add", "dev", "eth0", "parent", &class, "handle", &handle,
            ];
            cmd.extend(args.iter().map(String::as_str));
            tc(&cmd)?;
            let dst = format!("{}/32", self.lab.ip(*to));
            tc(&[
                "filter", "add", "dev", "eth0", "parent", "1:", "protocol", "ip", "prio", "1",
                "u32", "match", "ip", "dst", &dst, "flowid", &class,
            ])?;
        }
        Ok(())
    }
}

/// Both directions between `node` and `peer`, in `node`'s namespace.
fn cut(state: &mut State, node: u64, peer: Member) {
    state.drop_out.insert((node, peer));
    state.drop_in.insert((node, peer));
}

/// `n{id}` or `r{i}`: a member in counter names.
fn member_tag(m: Member) -> String {
    match m {
        Member::Node(id) => format!("n{id}"),
        Member::Router(i) => format!("r{i}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_a_random_drop_in_hundredths_of_a_percent_and_delay_a_netem() {
        let loss = |p| Netem {
            loss_percent: p,
            ..Netem::default()
        };
        assert_eq!(loss(0.0).loss_rule(), None);
        assert_eq!(
            loss(30.0).loss_rule().as_deref(),
            Some("numgen random mod 10000 < 3000 drop")
        );
        assert_eq!(
            loss(0.25).loss_rule().as_deref(),
            Some("numgen random mod 10000 < 25 drop")
        );
        assert_eq!(
            loss(250.0).loss_rule().as_deref(),
            Some("numgen random mod 10000 < 10000 drop")
        );
        assert!(!loss(30.0).delays(), "loss alone needs no qdisc");
        let delay = Netem {
            delay: Duration::from_millis(300),
            jitter: Duration::from_millis(20),
            loss_percent: 0.0,
        };
        assert!(delay.delays());
        assert_eq!(delay.args(), ["netem", "delay", "300000us", "20000us"]);
    }
}
