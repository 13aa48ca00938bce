#include "common/tls_cert.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace appvirt {
namespace {

namespace fs = std::filesystem;

class TlsCertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "tls_cert_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    cert_ = dir_ / "rdp.crt";
    key_ = dir_ / "rdp.key";
  }
  void TearDown() override { fs::remove_all(dir_); }

  X509* load_cert() {
    auto pem = read_small_file(cert_);
    if (!pem) return nullptr;
    BIO* bio = BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    return cert;
  }

  fs::path dir_, cert_, key_;
};

TEST_F(TlsCertTest, GeneratesRsaPairWithSanAndPrivateKeyMode) {
  auto r = ensure_self_signed_cert(cert_, key_, "rdp.example.test", 30);
  ASSERT_TRUE(r) << r.error().str();
  struct stat st {};
  ASSERT_EQ(stat(key_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  X509* cert = load_cert();
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_host(cert, "rdp.example.test", 0, 0, nullptr), 1);
  EXPECT_NE(X509_check_host(cert, "other.example.test", 0, 0, nullptr), 1);
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(pub), 2048);
  EXPECT_GT(X509_cmp_current_time(X509_get0_notAfter(cert)), 0);
  X509_free(cert);
  // No temp files are left next to the outputs.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 2);
}

TEST_F(TlsCertTest, IpAddressGoesIntoIpSan) {
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "127.0.0.1", 1));
  X509* cert = load_cert();
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
  X509_free(cert);
}

TEST_F(TlsCertTest, KeepsAValidExistingPair) {
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  auto cert_before = read_small_file(cert_);
  auto key_before = read_small_file(key_);
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  EXPECT_EQ(*read_small_file(cert_), *cert_before);
  EXPECT_EQ(*read_small_file(key_), *key_before);
}

TEST_F(TlsCertTest, ReplacesCorruptOrMismatchedFiles) {
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  auto key_before = *read_small_file(key_);
  std::ofstream(cert_) << "not a certificate";
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  EXPECT_NE(*read_small_file(key_), key_before);
  X509* cert = load_cert();
  ASSERT_NE(cert, nullptr);
  X509_free(cert);

  // A key from another pair: the next call must notice the mismatch and regenerate.
  fs::path other_cert = dir_ / "o.crt", other_key = dir_ / "o.key";
  ASSERT_TRUE(ensure_self_signed_cert(other_cert, other_key, "host-b", 30));
  fs::copy_file(other_key, key_, fs::copy_options::overwrite_existing);
  auto cert_mismatched = *read_small_file(cert_);
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  EXPECT_NE(*read_small_file(cert_), cert_mismatched);
}

TEST_F(TlsCertTest, RejectsBadArguments) {
  EXPECT_FALSE(ensure_self_signed_cert(cert_, key_, "a,DNS:evil", 30));
  EXPECT_FALSE(ensure_self_signed_cert(cert_, key_, "", 30));
  EXPECT_FALSE(ensure_self_signed_cert(cert_, key_, "ok", 0));
  EXPECT_FALSE(ensure_self_signed_cert(dir_ / "missing" / "c.crt", key_, "ok", 1));
  EXPECT_FALSE(fs::exists(key_));  // nothing half-written
}

TEST_F(TlsCertTest, CheckPairRequiresMatchingRsaKey) {
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  std::string cert = *read_small_file(cert_), key = *read_small_file(key_);
  EXPECT_TRUE(check_cert_key_pair(cert, key, true));
  EXPECT_FALSE(check_cert_key_pair("junk", key, true));
  EXPECT_FALSE(check_cert_key_pair(cert, "junk", true));

  EVP_PKEY* ec = EVP_EC_gen("P-256");
  ASSERT_NE(ec, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio, ec, nullptr, nullptr, 0, nullptr, nullptr), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string ec_pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  EVP_PKEY_free(ec);
  auto not_rsa = check_cert_key_pair(cert, ec_pem, true);
  ASSERT_FALSE(not_rsa);
  EXPECT_EQ(not_rsa.error().message, "private key is not RSA");
  auto mismatch = check_cert_key_pair(cert, ec_pem, false);
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message.find("does not belong"), std::string::npos);

  // An existing EC pair is replaced by an RSA one (FreeRDP servers need RSA).
  std::ofstream(key_) << ec_pem;
  ASSERT_TRUE(ensure_self_signed_cert(cert_, key_, "host-a", 30));
  EXPECT_TRUE(check_cert_key_pair(*read_small_file(cert_), *read_small_file(key_), true));
}

TEST_F(TlsCertTest, ReadSmallFileIsBounded) {
  std::ofstream(dir_ / "big") << std::string(5000, 'x');
  EXPECT_FALSE(read_small_file(dir_ / "big", 4096));
  EXPECT_EQ(read_small_file(dir_ / "big", 8192)->size(), 5000u);
  EXPECT_FALSE(read_small_file(dir_ / "nope"));
}

}  // namespace
}  // namespace appvirt
