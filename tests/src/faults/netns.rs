//! A private network for one test cluster: a bridge in the host with an
//! address in a private /24, and one network namespace per node and per router,
//! each joined to the bridge by a veth pair (`eth0` inside, with its own
//! address) and with its own loopback. The test process stays in the host and
//! reaches every process through the bridge; faults act inside the
//! namespaces ([`super::net`]), so the harness's own status and admin
//! requests (from the host's bridge address) are never partitioned.
//!
//! Names are unique per lab so parallel tests never collide: lab `k` owns
//! `10.{200 + k / 256}.{k % 256}.0/24`, the bridge `vf{k}br`, the namespaces
//! `vdbf-{k}-n{id}` / `vdbf-{k}-r{i}`; a lock file `/run/vdb-faults/{k}`
//! holds the owning process id. Dropping the lab deletes its namespaces (which
//! deletes their veths and nftables rules) and its bridge; a lab whose owner
//! died (a killed test run) is cleaned up by the next lab allocated on the
//! machine.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, FaultError};

/// Where the lock files of the labs live (tmpfs: gone at reboot, as the
/// namespaces are).
const LOCK_DIR: &str = "/run/vdb-faults";
/// Labs per machine (subnets 10.200.0.0 - 10.215.255.0).
const MAX_LABS: u32 = 4096;
/// Address of node `id` is `.{id}` (ids 1..=99), router `i` is `.{100 + i}`.
const ROUTER_BASE: u8 = 100;
const HOST_OCTET: u8 = 254;

/// Why network namespaces cannot be used here (`None`: they can): not root,
/// or `ip`, `tc` or `nft` missing.
pub fn available() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and nftables need root)".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!("`{tool}` not found (apt-get install -y {package})"));
        }
    }
    None
}

/// A process's place in the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Member {
    Node(u64),
    Router(usize),
}

/// One cluster's private network (see the module docs).
#[derive(Debug)]
pub struct NetLab {
    index: u32,
    lock: PathBuf,
    members: Vec<Member>,
}

impl NetLab {
    /// Builds the bridge and a namespace for each node id and each router.
    pub fn create(nodes: &[u64], routers: usize) -> Result<NetLab, FaultError> {
        if let Some(why) = available() {
            return Err(FaultError::Unavailable(why));
        }
        if let Some(bad) = nodes
            .iter()
            .find(|&&id| id == 0 || id >= ROUTER_BASE as u64)
        {
            return Err(FaultError::Invalid(format!(
                "node id {bad}: a lab addresses node ids 1..={}",
                ROUTER_BASE - 1
            )));
        }
        if routers > (HOST_OCTET - ROUTER_BASE) as usize {
            return Err(FaultError::Invalid(format!("{routers} routers: too many")));
        }
        let (index, lock) = claim()?;
        let mut members: Vec<Member> = nodes.iter().map(|&id| Member::Node(id)).collect();
        members.extend((0..routers).map(Member::Router));
        let lab = NetLab {
            index,
            lock,
            members,
        };
        lab.build()?;
        Ok(lab)
    }

    fn build(&self) -> Result<(), FaultError> {
        let bridge = self.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"], None)?;
        let host = format!("{}/24", self.host_ip());
        run("ip", &["addr", "add", &host, "dev", &bridge], None)?;
        run("ip", &["link", "set", &bridge, "up"], None)?;
        for &m in &self.members {
            let ns = self.namespace(m);
            let outer = self.veth(m);
            let inner = format!("{outer}p");
            run("ip", &["netns", "add", &ns], None)?;
            run(
                "ip",
                &[
                    "link", "add", &outer, "type", "veth", "peer", "name", &inner,
                ],
                None,
            )?;
            run(
                "ip",
                &["link", "set", &outer, "master", &bridge, "up"],
                None,
            )?;
            run("ip", &["link", "set", &inner, "netns", &ns], None)?;
            let addr = format!("{}/24", self.ip(m));
            for args in [
                vec!["link", "set", inner.as_str(), "name", "eth0"],
                vec!["addr", "add", addr.as_str(), "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
                vec!["link", "set", "lo", "up"],
            ] {
                self.ip_in(m, &args)?;
            }
        }
        Ok(())
    }

    /// `ip -n <ns> args..` for member `m`.
    pub(crate) fn ip_in(&self, m: Member, args: &[&str]) -> Result<(), FaultError> {
        let ns = self.namespace(m);
        let mut all = vec!["-n", ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all, None).map(drop)
    }

    /// `program args..` run inside member `m`'s namespace (`ip netns exec`,
    /// which execs the program: the child's pid is the program's).
    pub fn command(&self, m: Member, program: &Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns")
            .arg("exec")
            .arg(self.namespace(m))
            .arg(program);
        cmd
    }

    /// Member `m`'s address on the bridge.
    pub fn ip(&self, m: Member) -> Ipv4Addr {
        let last = match m {
            Member::Node(id) => id as u8,
            Member::Router(i) => ROUTER_BASE + i as u8,
        };
        let [a, b] = self.prefix();
        Ipv4Addr::new(10, a, b, last)
    }

    /// The host's address on the bridge (where the test's requests come from).
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b] = self.prefix();
        Ipv4Addr::new(10, a, b, HOST_OCTET)
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    pub fn namespace(&self, m: Member) -> String {
        match m {
            Member::Node(id) => format!("vdbf-{}-n{id}", self.index),
            Member::Router(i) => format!("vdbf-{}-r{i}", self.index),
        }
    }

    fn prefix(&self) -> [u8; 2] {
        [200 + (self.index / 256) as u8, (self.index % 256) as u8]
    }

    fn bridge(&self) -> String {
        format!("vf{}br", self.index)
    }

    fn veth(&self, m: Member) -> String {
        match m {
            Member::Node(id) => format!("vf{}n{id}", self.index),
            Member::Router(i) => format!("vf{}r{i}", self.index),
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if let Err(e) = remove(self.index) {
            eprintln!("netns lab {}: cleanup: {e}", self.index);
        }
        let _ = fs::remove_file(&self.lock);
    }
}

/// Claims a free lab index: the first whose lock file can be created, or
/// whose owner is dead (its leftovers are removed first).
fn claim() -> Result<(u32, PathBuf), FaultError> {
    fs::create_dir_all(LOCK_DIR)?;
    // One claim at a time on the machine: two processes taking over the same
    // dead lab would both delete its leftovers, and one of them fail.
    let serial = fs::File::create(Path::new(LOCK_DIR).join("claim"))?;
    // SAFETY: flock on a descriptor this function owns; the lock goes with
    // the file when it is dropped at the end of the claim.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&serial), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let me = std::process::id();
    for index in 0..MAX_LABS {
        let lock = Path::new(LOCK_DIR).join(index.to_string());
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(mut f) => {
                writeln!(f, "{me}")?;
                // A namespace or bridge of this index may survive a lock file
                // removed by hand: start clean.
                remove(index)?;
                return Ok((index, lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if owner_alive(&lock) {
                    continue;
                }
                remove(index)?;
                // Take the stale lock over; a racing claimer may win it.
                if fs::remove_file(&lock).is_ok() {
                    if let Ok(mut f) = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&lock)
                    {
                        writeln!(f, "{me}")?;
                        return Ok((index, lock));
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(FaultError::Invalid(format!(
        "all {MAX_LABS} lab indexes in {LOCK_DIR} are in use"
    )))
}

/// Whether the process named in a lock file is alive (an unreadable or empty
/// file counts as alive: its owner may be writing it right now).
fn owner_alive(lock: &Path) -> bool {
    match fs::read_to_string(lock) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(pid) => Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => text.trim().is_empty(),
        },
        Err(_) => true,
    }
}

/// Deletes lab `index`'s veths, namespaces and bridge, whichever exist. The
/// veths go first and by name: the kernel frees a deleted namespace's
/// devices in the background, so a name could still be taken a moment later.
fn remove(index: u32) -> Result<(), FaultError> {
    let links = [format!("vf{index}n"), format!("vf{index}r")];
    for entry in fs::read_dir("/sys/class/net")?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Deleting one end of a veth pair deletes the other: check again.
        let exists = Path::new("/sys/class/net").join(&name).exists();
        if exists && links.iter().any(|p| name.starts_with(p.as_str())) {
            run("ip", &["link", "delete", &name], None)?;
        }
    }
    let prefix = format!("vdbf-{index}-");
    let list = run("ip", &["netns", "list"], None)?;
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        // `name (id: 3)` or just `name`.
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&prefix) {
            run("ip", &["netns", "delete", name], None)?;
        }
    }
    let bridge = format!("vf{index}br");
    if Path::new("/sys/class/net").join(&bridge).exists() {
        run("ip", &["link", "delete", &bridge], None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several runs starting at once next to a lab whose owner died (a killed
    /// chaos run) must each get a lab: before claims were serialized, all of
    /// them deleted the dead lab's namespaces at once and all but one failed
    /// on a namespace another had just deleted.
    #[test]
    fn concurrent_claims_next_to_a_dead_lab_all_succeed() {
        if let Some(why) = available() {
            eprintln!("skipped: {why}");
            return;
        }
        fs::create_dir_all(LOCK_DIR).unwrap();
        let dead = {
            let mut child = Command::new("true").spawn().unwrap();
            child.wait().unwrap();
            child.id()
        };
        // The first free index (other labs may be in use on the machine).
        let stale = (0..MAX_LABS)
            .find(|i| !Path::new(LOCK_DIR).join(i.to_string()).exists())
            .unwrap();
        fs::write(
            Path::new(LOCK_DIR).join(stale.to_string()),
            format!("{dead}\n"),
        )
        .unwrap();
        for n in 1..=6 {
            run("ip", &["netns", "add", &format!("vdbf-{stale}-n{n}")], None).unwrap();
        }
        let claims: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(claim))
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let mut indexes = Vec::new();
        for (index, lock) in claims.iter().flatten() {
            indexes.push(*index);
            let _ = remove(*index);
            let _ = fs::remove_file(lock);
        }
        let errors: Vec<String> = claims
            .iter()
            .filter_map(|c| c.as_ref().err().map(|e| e.to_string()))
            .collect();
        assert!(errors.is_empty(), "failed claims: {errors:?}");
        indexes.sort_unstable();
        indexes.dedup();
        assert_eq!(indexes.len(), 4, "four distinct labs");
        assert!(indexes.contains(&stale), "the dead lab was taken over");
    }
}
