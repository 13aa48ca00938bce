#include "common/tls_cert.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "common/unique_fd.h"

namespace appvirt {
namespace {

template <auto Fn>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

// The OpenSSL error queue as text, emptied, so the next call starts clean.
std::string openssl_error(std::string_view what) {
  std::string out(what);
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  return out;
}

bool is_ip_address(const std::string& s) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The name goes into an OpenSSL config string ("DNS:<name>"), where a comma would add entries.
bool is_valid_host_name(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_' || c == '*' || c == ':';
    if (!ok) return false;
  }
  return true;
}

bool existing_pair_is_usable(const std::filesystem::path& cert_path,
                             const std::filesystem::path& key_path) {
  auto cert_pem = read_small_file(cert_path);
  auto key_pem = read_small_file(key_path);
  return cert_pem && key_pem && check_cert_key_pair(*cert_pem, *key_pem, true);
}

Result<void> add_extension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return fail(openssl_error("X509 extension " + std::string(OBJ_nid2sn(nid)) + "=" + value));
  }
  return {};
}

// A random positive 127-bit serial, as RFC 5280 asks for unpredictable serials.
Result<void> set_random_serial(X509* cert) {
  BnPtr bn(BN_new());
  if (!bn || BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return fail(openssl_error("certificate serial"));
  }
  return {};
}

Result<X509Ptr> make_certificate(EVP_PKEY* key, const std::string& cn, int days) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return fail(openssl_error("X509_new"));
  if (auto ok = set_random_serial(cert.get()); !ok) return tl::unexpected(ok.error());
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -300);  // tolerate small clock skew
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  if (X509_set_issuer_name(cert.get(), name) != 1 || X509_set_pubkey(cert.get(), key) != 1) {
    return fail(openssl_error("certificate names/public key"));
  }
  const std::string san = (is_ip_address(cn) ? "IP:" : "DNS:") + cn;
  for (const auto& [nid, value] :
       {std::pair<int, std::string>{NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, "serverAuth"},
        {NID_subject_key_identifier, "hash"},
        {NID_subject_alt_name, san}}) {
    if (auto ok = add_extension(cert.get(), nid, value); !ok) return tl::unexpected(ok.error());
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) return fail(openssl_error("X509_sign"));
  return cert;
}

template <class WriteFn>
Result<std::string> to_pem(WriteFn write) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return fail(openssl_error("PEM write"));
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Writes content to a temp file next to path (created with the final mode, fsynced) and returns
// its name; install_files then renames it over path, so a reader never sees half a key.
Result<std::filesystem::path> write_temp(const std::filesystem::path& path,
                                         const std::string& content, mode_t mode) {
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(getpid());
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return fail_errno("open(" + tmp.string() + ")");
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += static_cast<size_t>(n);
  }
  if (done < content.size() || ::fchmod(fd.get(), mode) != 0 || ::fsync(fd.get()) != 0) {
    auto err = fail_errno("write(" + tmp.string() + ")");
    ::unlink(tmp.c_str());
    return err;
  }
  return tmp;
}

// Both temp files are complete before either is renamed, so a failed write changes nothing.
// Key first: a crash between the two renames leaves a mismatched pair, which the next
// ensure_self_signed_cert detects (X509_check_private_key) and regenerates.
Result<void> install_files(const std::filesystem::path& cert_path, const std::string& cert_pem,
                           const std::filesystem::path& key_path, const std::string& key_pem) {
  auto key_tmp = write_temp(key_path, key_pem, 0600);
  if (!key_tmp) return tl::unexpected(key_tmp.error());
  auto cert_tmp = write_temp(cert_path, cert_pem, 0644);
  if (!cert_tmp) {
    ::unlink(key_tmp->c_str());
    return tl::unexpected(cert_tmp.error());
  }
  if (::rename(key_tmp->c_str(), key_path.c_str()) != 0 ||
      ::rename(cert_tmp->c_str(), cert_path.c_str()) != 0) {
    auto err = fail_errno("rename into " + key_path.string() + " / " + cert_path.string());
    ::unlink(key_tmp->c_str());
    ::unlink(cert_tmp->c_str());
    return err;
  }
  return {};
}

}  // namespace

Result<void> check_cert_key_pair(const std::string& cert_pem, const std::string& key_pem,
                                 bool require_rsa) {
  BioPtr cert_bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  BioPtr key_bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  PkeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!cert) return fail("certificate is not a PEM X.509 certificate");
  if (!key) return fail("private key is not an unencrypted PEM private key");
  if (require_rsa && EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
    return fail("private key is not RSA");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return fail("private key does not belong to the certificate");
  }
  return {};
}

Result<std::string> read_small_file(const std::filesystem::path& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return fail_errno("open(" + path.string() + ")");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read(" + path.string() + ")");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      return fail(path.string() + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
}

Result<void> ensure_self_signed_cert(const std::filesystem::path& cert_path,
                                     const std::filesystem::path& key_path,
                                     const std::string& common_name, int days) {
  if (!is_valid_host_name(common_name)) return fail("tls cert: invalid common name");
  if (days < 1 || days > 36500) return fail("tls cert: days must be 1..36500");
  if (existing_pair_is_usable(cert_path, key_path)) return {};
  PkeyPtr key(EVP_RSA_gen(2048));
  if (!key) return fail(openssl_error("RSA 2048 key generation"));
  auto cert = make_certificate(key.get(), common_name, days);
  if (!cert) return tl::unexpected(cert.error());
  auto key_pem = to_pem([&](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  });
  auto cert_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, cert->get()); });
  if (!key_pem) return tl::unexpected(key_pem.error());
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  return install_files(cert_path, *cert_pem, key_path, *key_pem);
}

}  // namespace appvirt
