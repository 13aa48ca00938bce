#include "session-host/sandbox/rootfs.h"

#include <grp.h>
#include <pwd.h>
#include <sys/mount.h>

#include <filesystem>
#include <set>

namespace appvirt::sandbox {
namespace {

namespace fs = std::filesystem;

constexpr unsigned long kRoFlags = MS_RDONLY | MS_NOSUID | MS_NODEV;
// Device nodes bound from the host; nothing that reaches hardware or the host's terminals.
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

std::string inside(const RootfsPlan& plan, const std::string& path) { return plan.new_root + path; }

// A bind keeps the source mount's flags; the read-only/nosuid/... flags need a second,
// remount call on the new mount.
Result<> bind_mount(Sys& sys, const std::string& src, const std::string& dst, unsigned long flags) {
  if (auto r = sys.mount(src, dst, "", MS_BIND | MS_REC, ""); !r) return r;
  return sys.mount("", dst, "", MS_REMOUNT | MS_BIND | flags, "");
}

Result<> bind_entry(Sys& sys, const RootfsPlan& plan, const HostEntry& e) {
  std::string dst = inside(plan, e.path);
  if (auto r = mkdir_all(sys, fs::path(dst).parent_path().string(), 0755); !r) return r;
  switch (e.kind) {
    case HostEntry::Kind::symlink:
      return sys.symlink(e.link_target, dst);
    case HostEntry::Kind::dir:
      if (auto r = sys.mkdir(dst, 0755); !r) return r;
      return bind_mount(sys, e.path, dst, kRoFlags);
    case HostEntry::Kind::file:
      if (auto r = sys.create_file(dst, "", 0644); !r) return r;
      return bind_mount(sys, e.path, dst, kRoFlags);
  }
  return {};
}

Result<HostEntry> inspect(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::symlink_status(path, ec);
  if (ec) return fail("stat(" + path + ")", ec.value());
  HostEntry e{path, HostEntry::Kind::file, ""};
  if (fs::is_symlink(st)) {
    e.kind = HostEntry::Kind::symlink;
    e.link_target = fs::read_symlink(path, ec).string();
    if (ec) return fail("readlink(" + path + ")", ec.value());
  } else if (fs::is_directory(st)) {
    e.kind = HostEntry::Kind::dir;
  } else if (!fs::is_regular_file(st)) {
    return fail(path + " is neither file, directory nor symlink", EINVAL);
  }
  return e;
}

std::string make_passwd(const CreateRequest& req) {
  std::string shell = "/bin/sh";
  if (const passwd* pw = ::getpwnam(req.user.c_str()); pw && pw->pw_uid == req.id.uid) {
    if (pw->pw_shell && *pw->pw_shell) shell = pw->pw_shell;
  }
  return "root:x:0:0:root:/root:/usr/sbin/nologin\n" + req.user +
         ":x:" + std::to_string(req.id.uid) + ":" + std::to_string(req.id.gid) + ":" + req.user +
         ":" + req.home + ":" + shell + "\n" +
         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
}

std::string make_group(const CreateRequest& req) {
  std::set<gid_t> gids(req.id.groups.begin(), req.id.groups.end());
  gids.insert(req.id.gid);
  std::string out = "root:x:0:\n";
  for (gid_t g : gids) {
    if (g == 65534) continue;
    const group* gr = ::getgrgid(g);
    std::string name = gr ? gr->gr_name : "g" + std::to_string(g);
    out += name + ":x:" + std::to_string(g) + ":" + (g == req.id.gid ? "" : req.user) + "\n";
  }
  return out + "nogroup:x:65534:\n";
}

}  // namespace

const std::vector<std::string>& etc_allowlist() {
  static const std::vector<std::string> list = {
      "/etc/hosts",       "/etc/host.conf",    "/etc/nsswitch.conf",  "/etc/resolv.conf",
      "/etc/ld.so.cache", "/etc/ld.so.conf",   "/etc/ld.so.conf.d",   "/etc/localtime",
      "/etc/timezone",    "/etc/locale.alias", "/etc/default/locale", "/etc/fonts",
      "/etc/X11",         "/etc/alternatives", "/etc/ssl/certs",      "/etc/ssl/openssl.cnf",
      "/etc/xdg",         "/etc/gtk-2.0",      "/etc/gtk-3.0",        "/etc/mime.types",
      "/etc/profile",     "/etc/bash.bashrc",  "/etc/inputrc",        "/etc/terminfo",
      "/etc/magic",       "/etc/os-release",   "/etc/debian_version", "/etc/shells",
      "/etc/dconf",
  };
  return list;
}

Result<RootfsPlan> plan_rootfs(const CreateRequest& req) {
  RootfsPlan plan;
  plan.new_root = req.runtime_dir + "/root";
  plan.home = req.home;
  plan.x11_dir = req.runtime_dir + "/x11";
  plan.run_dir = req.runtime_dir + "/run";
  for (const char* name : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    if (!fs::exists(fs::symlink_status(name))) continue;
    auto e = inspect(name);
    if (!e) return tl::unexpected(e.error());
    plan.top_level.push_back(*e);
  }
  for (const std::string& path : etc_allowlist()) {
    if (!fs::exists(fs::symlink_status(path))) continue;
    auto e = inspect(path);
    if (!e) return tl::unexpected(e.error());
    plan.etc.push_back(*e);
  }
  plan.passwd = make_passwd(req);
  plan.group = make_group(req);
  return plan;
}

Result<> make_mounts_private(Sys& sys) {
  // Nothing mounted below may propagate back to the host's mount namespace.
  return sys.mount("", "/", "", MS_REC | MS_PRIVATE, "");
}

Result<> mount_root_tmpfs(Sys& sys, const RootfsPlan& plan) {
  return sys.mount("tmpfs", plan.new_root, "tmpfs", MS_NOSUID | MS_NODEV,
                   "mode=0755,size=16m,nr_inodes=16384");
}

Result<> bind_usr(Sys& sys, const RootfsPlan& plan) {
  if (auto r = sys.mkdir(inside(plan, "/usr"), 0755); !r) return r;
  return bind_mount(sys, "/usr", inside(plan, "/usr"), kRoFlags);
}

Result<> make_top_level(Sys& sys, const RootfsPlan& plan) {
  for (const HostEntry& e : plan.top_level) {
    if (auto r = bind_entry(sys, plan, e); !r) return r;
  }
  return {};
}

Result<> build_etc(Sys& sys, const RootfsPlan& plan) {
  if (auto r = sys.mkdir(inside(plan, "/etc"), 0755); !r) return r;
  if (auto r = sys.create_file(inside(plan, "/etc/passwd"), plan.passwd, 0644); !r) return r;
  if (auto r = sys.create_file(inside(plan, "/etc/group"), plan.group, 0644); !r) return r;
  for (const HostEntry& e : plan.etc) {
    if (auto r = bind_entry(sys, plan, e); !r) return r;
  }
  return {};
}

Result<> mount_tmp(Sys& sys, const RootfsPlan& plan) {
  std::string tmp = inside(plan, "/tmp");
  if (auto r = sys.mkdir(tmp, 01777); !r) return r;
  // tmpfs pages are charged to the writer's memory cgroup, so no size option is needed.
  if (auto r = sys.mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"); !r) return r;
  if (auto r = sys.mkdir(tmp + "/.X11-unix", 01777); !r) return r;
  return bind_mount(sys, plan.x11_dir, tmp + "/.X11-unix", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

Result<> bind_runtime_dirs(Sys& sys, const RootfsPlan& plan) {
  std::string run = inside(plan, "/run/appvirt");
  if (auto r = mkdir_all(sys, run, 0755); !r) return r;
  if (auto r = bind_mount(sys, plan.run_dir, run, MS_NOSUID | MS_NODEV | MS_NOEXEC); !r) return r;
  // Xvfb's xkbcomp writes compiled keymaps here when it can, else to /tmp.
  std::string xkb = inside(plan, "/var/lib/xkb");
  if (auto r = mkdir_all(sys, xkb, 0755); !r) return r;
  return sys.mount("tmpfs", xkb, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=8m");
}

Result<> bind_home(Sys& sys, const RootfsPlan& plan) {
  // After /tmp: a home below /tmp (tests) then lands inside the private /tmp.
  std::string home = inside(plan, plan.home);
  if (auto r = mkdir_all(sys, home, 0755); !r) return r;
  return bind_mount(sys, plan.home, home, MS_NOSUID | MS_NODEV);
}

Result<> mount_dev(Sys& sys, const RootfsPlan& plan) {
  std::string dev = inside(plan, "/dev");
  if (auto r = sys.mkdir(dev, 0755); !r) return r;
  auto r = sys.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k");
  if (!r) return r;
  for (const char* name : kDevices) {
    std::string node = dev + "/" + name;
    if (r = sys.create_file(node, "", 0666); !r) return r;
    if (r = bind_mount(sys, std::string("/dev/") + name, node, MS_NOSUID | MS_NOEXEC); !r) return r;
  }
  if (r = sys.mkdir(dev + "/shm", 01777); !r) return r;
  if (r = sys.mount("tmpfs", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"); !r) {
    return r;
  }
  // A private devpts instance: terminals of the container only (xterm needs one).
  if (r = sys.mkdir(dev + "/pts", 0755); !r) return r;
  r = sys.mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620");
  if (!r) return r;
  if (r = sys.symlink("pts/ptmx", dev + "/ptmx"); !r) return r;
  for (auto [link, target] : {std::pair{"fd", "/proc/self/fd"},
                              {"stdin", "/proc/self/fd/0"},
                              {"stdout", "/proc/self/fd/1"},
                              {"stderr", "/proc/self/fd/2"}}) {
    if (r = sys.symlink(target, dev + "/" + link); !r) return r;
  }
  return sys.mount("", dev, "", MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
                   "mode=0755,size=64k");
}

Result<> mount_proc(Sys& sys, const RootfsPlan& plan) {
  std::string proc = inside(plan, "/proc");
  if (auto r = sys.mkdir(proc, 0555); !r) return r;
  return sys.mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
}

Result<> pivot_into_root(Sys& sys, const RootfsPlan& plan) {
  // pivot_root(".", ".") stacks the old root on the new one; detaching "." then drops the
  // old root (and every host mount under it) from this namespace, no put_old dir needed.
  if (auto r = sys.chdir(plan.new_root); !r) return r;
  if (auto r = sys.pivot_root(".", "."); !r) return r;
  if (auto r = sys.umount2(".", MNT_DETACH); !r) return r;
  return sys.chdir("/");
}

Result<> remount_root_readonly(Sys& sys) {
  return sys.mount("", "/", "", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, "");
}

Result<> build_rootfs(Sys& sys, const RootfsPlan& plan) {
  using Step = Result<> (*)(Sys&, const RootfsPlan&);
  for (Step step : {mount_root_tmpfs, bind_usr, make_top_level, build_etc, mount_tmp,
                    bind_runtime_dirs, bind_home, mount_dev, mount_proc, pivot_into_root}) {
    if (auto r = step(sys, plan); !r) return r;
  }
  return remount_root_readonly(sys);
}

}  // namespace appvirt::sandbox
