//! Network namespaces for tests that need separate hosts: a school router with clients on
//! their own links, each with its own address and MAC. Everything a test makes lives inside
//! namespaces it made (`ip netns add`), deleted when dropped: no address, route or interface
//! is added to the host's own namespace, and no packet leaves the namespaces.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace made for one test; deleted (with its interfaces) when dropped. Drop
/// the processes running inside it first.
pub struct Netns {
    name: String,
}

impl Netns {
    /// True when this process may make namespaces (root, with `ip`).
    pub fn available() -> bool {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let ip = Command::new("ip").arg("-V").output().is_ok();
        root && ip
    }

    /// A fresh namespace named after this process and `role`, with loopback up.
    pub fn create(role: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("hrtest-{}-{n}-{role}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS…`; panics with its error output on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a thread that has entered the namespace, and returns its result. Sockets
    /// made there belong to the namespace wherever they are used afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file =
                    std::fs::File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("entering {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Joins this namespace and `other` with a veth pair: `here` (given `here_addr`, CIDR) in
    /// this one, `there` (`there_addr`) in the other, both up. `mac` sets `there`'s MAC.
    pub fn link(
        &self,
        here: &str,
        here_addr: &str,
        other: &Netns,
        there: &str,
        there_addr: &str,
        mac: Option<&str>,
    ) {
        self.ip(&[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            &other.name,
        ]);
        if let Some(mac) = mac {
            other.ip(&["link", "set", there, "address", mac]);
        }
        self.ip(&["addr", "add", here_addr, "dev", here]);
        other.ip(&["addr", "add", there_addr, "dev", there]);
        self.ip(&["link", "set", here, "up"]);
        other.ip(&["link", "set", there, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
