// Tests of the safetensors reader/writer: bit-exact round trips for every dtype, hand-written
// golden bytes, sharded checkpoints, and a corpus of malformed files each refused with its own
// message.
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstring>
#include <fstream>

#include "biolm/core/error.h"
#include "biolm/io/safetensors.h"
#include "support/test_util.h"

using namespace biolm;
namespace fs = std::filesystem;

namespace {

// A safetensors image written by hand: little-endian length, header text, data bytes.
std::string make_image(const std::string& header, const std::string& data) {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
  return out + header + data;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool same_bytes(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  auto ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<size_t>(ca.numel() * ca.element_size())) == 0;
}

std::string error_of(const std::string& image) {
  try {
    io::parse_safetensors(reinterpret_cast<const uint8_t*>(image.data()), image.size(), "bad.safetensors");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "(accepted)";
}

}  // namespace

TEST_CASE("safetensors round trip is bit-exact for every dtype", "[io][safetensors]") {
  torch::manual_seed(7);
  std::map<std::string, torch::Tensor> t;
  auto f64 = torch::randn({3, 4}, torch::kFloat64);
  f64[0][0] = std::numeric_limits<double>::quiet_NaN();
  f64[0][1] = -0.0;
  f64[0][2] = std::numeric_limits<double>::infinity();
  t["f64"] = f64;
  t["f32"] = torch::randn({2, 3, 5});
  t["f16"] = torch::randn({7}).to(torch::kFloat16);
  t["bf16"] = torch::randn({4, 2}).to(torch::kBFloat16);
  t["i64"] = torch::tensor({std::numeric_limits<int64_t>::min(), int64_t{-1}, int64_t{0},
                            std::numeric_limits<int64_t>::max()});
  t["i32"] = torch::arange(-6, 6, torch::kInt32).view({3, 4});
  t["i16"] = torch::tensor({int16_t{-32768}, int16_t{258}, int16_t{32767}}, torch::kInt16);
  t["i8"] = torch::arange(-128, 128, torch::kInt8);
  t["u8"] = torch::arange(0, 256, torch::kInt32).to(torch::kUInt8);
  t["bool"] = torch::tensor({true, false, true, true});
  t["scalar"] = torch::tensor(3.25);                    // shape []
  t["empty"] = torch::zeros({0, 3}, torch::kFloat32);  // zero bytes
  t["strided"] = torch::arange(12, torch::kFloat32).view({3, 4}).t();  // non-contiguous input

  biolm::test::TempDir dir("st");
  const auto path = dir / "all.safetensors";
  io::save_safetensors(path, t, {{"format", "pt"}, {"note", "héllo \"quoted\""}});

  io::SafetensorsFile f(path);
  REQUIRE(f.tensors().size() == t.size());
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "héllo \"quoted\"");
  for (const auto& [name, ref] : t) {
    INFO(name);
    auto got = f.tensor(name);
    CHECK(same_bytes(got, ref.contiguous()));
  }
  CHECK(io::dtype_name(f.info("bf16").dtype) == "BF16");
  CHECK(f.info("scalar").shape.empty());
  CHECK(f.info("empty").nbytes() == 0);
  CHECK(f.info("u8").dtype == io::Dtype::U8);
  CHECK(f.info("bool").dtype == io::Dtype::BOOL);
  // Tensors stay valid after the mapping is gone.
  auto kept = f.tensor("f32");
  { io::SafetensorsFile moved = std::move(f); }
  CHECK(same_bytes(kept, t["f32"]));

  // Deterministic, 8-byte aligned header padded with spaces.
  const auto a = io::serialize_safetensors(t, {{"format", "pt"}});
  const auto b = io::serialize_safetensors(t, {{"format", "pt"}});
  CHECK(a == b);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(a[static_cast<size_t>(i)]);
  CHECK((8 + n) % 8 == 0);
  // No temp files left next to the output.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 1);
}

TEST_CASE("safetensors writer produces the exact expected bytes", "[io][safetensors]") {
  // Header text is 54 bytes, padded with two spaces to 56; data: 1.5f = 0x3FC00000 little-endian.
  const std::string header = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  REQUIRE(header.size() == 54);
  const std::string expected = make_image(header + "  ", std::string("\x00\x00\xC0\x3F", 4));
  CHECK(io::serialize_safetensors({{"x", torch::tensor({1.5f})}}) == expected);
}

TEST_CASE("safetensors reader reads a hand-written golden file", "[io][safetensors]") {
  // a: F32 [2] = {1.0, -2.0}; b: I16 [1,2] = {258, -1}; c: BF16 [1] = 1.0 (0x3F80).
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"I16","shape":[1,2],"data_offsets":[8,12]},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"c":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}})";
  const std::string data("\x00\x00\x80\x3F\x00\x00\x00\xC0\x02\x01\xFF\xFF\x80\x3F", 14);
  biolm::test::TempDir dir("st");
  write_bytes(dir / "golden.safetensors", make_image(header, data));
  io::SafetensorsFile f(dir / "golden.safetensors");
  CHECK(f.names() == std::vector<std::string>{"a", "b", "c"});
  auto a = f.tensor("a");
  CHECK(a.scalar_type() == torch::kFloat32);
  CHECK(a[0].item<float>() == 1.0f);
  CHECK(a[1].item<float>() == -2.0f);
  auto b = f.tensor("b");
  CHECK(b.sizes() == torch::IntArrayRef({1, 2}));
  CHECK(b[0][0].item<int16_t>() == 258);
  CHECK(b[0][1].item<int16_t>() == -1);
  CHECK(f.tensor("c").to(torch::kFloat32).item<float>() == 1.0f);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.header().data_offset == 8 + header.size());
  CHECK_THROWS_AS(f.tensor("zzz"), CheckpointError);
}

TEST_CASE("malformed safetensors files are refused, each with its own message", "[io][safetensors]") {
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\0');
  struct Case {
    const char* what;
    std::string image;
    const char* message;
  };
  std::string huge_len(8, '\0');
  huge_len[0] = '\x10';  // header length 16 with only 4 bytes following
  std::string over_cap(8, '\0');
  over_cap[4] = '\x01';  // 2^32 > 100 MB
  const std::vector<Case> cases = {
      {"empty file", "", "shorter than the 8-byte header length"},
      {"7 bytes", std::string(7, '\0'), "shorter than the 8-byte header length"},
      {"header length beyond file", huge_len + "{}  ", "runs past the end of the file"},
      {"header length above cap", over_cap + "{}", "exceeds the 100 MB limit"},
      {"not an object start", make_image("[1,2]", ""), "does not start with '{'"},
      {"bad JSON", make_image(R"({"w":{"dtype":"F32",)", ""), "header is not valid JSON"},
      {"entry not an object", make_image(R"({"w":[1,2]})", ""), "header entry must be a JSON object"},
      {"metadata not an object", make_image(R"({"__metadata__":[1]})", ""), "must be an object"},
      {"metadata value not a string", make_image(R"({"__metadata__":{"k":1}})", ""), "must be a string"},
      {"missing dtype", make_image(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", eight), "missing field 'dtype'"},
      {"missing shape", make_image(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", eight), "missing field 'shape'"},
      {"missing offsets", make_image(R"({"w":{"dtype":"F32","shape":[2]}})", eight), "missing field 'data_offsets'"},
      {"unknown field", make_image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", eight),
       "unknown field 'x'"},
      {"unknown dtype", make_image(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", "ab"),
       "unknown dtype \"F8_E4M3\""},
      {"negative shape", make_image(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
       "negative dimension -2"},
      {"fractional shape", make_image(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", eight),
       "is not a non-negative integer"},
      {"bad offsets", make_image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight),
       "must be two non-negative integers"},
      {"end before begin", make_image(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
       "end before begin"},
      {"size mismatch", make_image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
       "hold 8 bytes but shape [3] x F32 needs 12 bytes"},
      {"offsets outside data", make_image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight),
       "outside the data section (8 bytes)"},
      {"overlap",
       make_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  eight),
       "overlap tensor 'a'"},
      {"gap", make_image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight), "gap in the data section"},
      {"trailing bytes", make_image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", eight),
       "cover only 4"},
      {"duplicate name", make_image("{" + ok_entry + "," + ok_entry + "}", eight), "duplicate name in header"},
      {"header not an object after brace", make_image(R"({} [)", ""), "header is not valid JSON"},
      {"bool byte 2", make_image(R"({"w":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2)),
       "BOOL element 1 holds byte 2"},
      {"shape overflow",
       make_image(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
       "overflows the byte count"},
  };
  std::set<std::string> messages;
  for (const auto& c : cases) {
    INFO(c.what);
    const std::string msg = error_of(c.image);
    INFO(msg);
    CHECK(msg.find(c.message) != std::string::npos);
    CHECK(msg.rfind("bad.safetensors", 0) == 0);
    messages.insert(msg);
  }
  CHECK(messages.size() == cases.size());  // every refusal says something different

  // A nested duplicate key is found too, and a valid file is accepted.
  CHECK(error_of(make_image(R"({"__metadata__":{"k":"a","k":"b"}})", "")).find("duplicate name") != std::string::npos);
  CHECK(error_of(make_image("{" + ok_entry + "}", eight)) == "(accepted)");
  // The tensor name appears in the message.
  CHECK(error_of(make_image(R"({"enc.w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight))
            .find("tensor 'enc.w'") != std::string::npos);

  // Through the file reader as well (mmap path), plus a missing file.
  biolm::test::TempDir dir("st");
  write_bytes(dir / "short.safetensors", "abc");
  CHECK_THROWS_WITH(io::SafetensorsFile(dir / "short.safetensors"), Catch::Contains("shorter than the 8-byte"));
  write_bytes(dir / "empty.safetensors", "");
  CHECK_THROWS_WITH(io::SafetensorsFile(dir / "empty.safetensors"), Catch::Contains("is 0 bytes"));
  CHECK_THROWS_AS(io::SafetensorsFile(dir / "absent.safetensors"), IoError);
}

TEST_CASE("sharded safetensors checkpoints round trip through the index", "[io][safetensors]") {
  std::map<std::string, torch::Tensor> t;
  for (int i = 0; i < 5; ++i) t["layer." + std::to_string(i) + ".w"] = torch::full({10}, float(i));  // 40 B each
  t["emb"] = torch::arange(6, torch::kInt64);                                                        // 48 B
  biolm::test::TempDir dir("shard");
  io::ShardOptions opt;
  opt.max_shard_bytes = 100;
  const auto files = io::save_sharded(dir.path(), t, {{"format", "pt"}}, opt);
  // Name order: emb(48) layer.0(40) | layer.1 layer.2 | layer.3 layer.4 -> 3 shards + index.
  REQUIRE(files.size() == 4);
  CHECK(files[0].filename() == "model-00001-of-00003.safetensors");
  CHECK(files[2].filename() == "model-00003-of-00003.safetensors");
  CHECK(files[3].filename() == "model.safetensors.index.json");
  const auto index = nlohmann::json::parse(biolm::test::read_text(files[3]));
  CHECK(index["metadata"]["total_size"] == 48 + 5 * 40);
  CHECK(index["weight_map"]["emb"] == "model-00001-of-00003.safetensors");
  CHECK(index["weight_map"]["layer.0.w"] == "model-00001-of-00003.safetensors");
  CHECK(index["weight_map"]["layer.1.w"] == "model-00002-of-00003.safetensors");
  CHECK(index["weight_map"]["layer.4.w"] == "model-00003-of-00003.safetensors");

  io::SafetensorsCheckpoint ck(dir.path());
  CHECK(ck.files().size() == 3);
  CHECK(ck.names().size() == 6);
  const auto loaded = ck.load_all();
  for (const auto& [name, ref] : t) CHECK(same_bytes(loaded.at(name), ref));
  CHECK(ck.file_of("layer.3.w").filename() == "model-00003-of-00003.safetensors");

  // inspect_path summarises the directory.
  const auto summary = io::inspect_path(dir.path());
  CHECK(summary["parameters"] == 6 + 5 * 10);
  CHECK(summary["bytes"] == 48 + 5 * 40);
  CHECK(summary["tensors"].size() == 6);
  CHECK(summary["tensors"][0]["name"] == "emb");
  CHECK(summary["tensors"][0]["dtype"] == "I64");
  CHECK(summary["tensors"][0]["shape"] == nlohmann::json::array({6}));
  CHECK(summary["files"].size() == 3);

  // The index and the shards must agree.
  auto bad = index;
  bad["weight_map"]["layer.1.w"] = "model-00001-of-00003.safetensors";
  biolm::test::write_text(dir / "model.safetensors.index.json", bad.dump());
  CHECK_THROWS_WITH(io::SafetensorsCheckpoint(dir.path()), Catch::Contains("absent from it"));
  bad = index;
  bad["weight_map"].erase("layer.2.w");
  biolm::test::write_text(dir / "model.safetensors.index.json", bad.dump());
  CHECK_THROWS_WITH(io::SafetensorsCheckpoint(dir.path()), Catch::Contains("not listed in the index"));
  bad = index;
  bad["weight_map"]["ghost"] = "model-00009-of-00003.safetensors";
  biolm::test::write_text(dir / "model.safetensors.index.json", bad.dump());
  CHECK_THROWS_AS(io::SafetensorsCheckpoint(dir.path()), IoError);

  // Everything fits one shard: a single model.safetensors and no index.
  biolm::test::TempDir one("one");
  const auto single = io::save_sharded(one.path(), t);
  REQUIRE(single.size() == 1);
  CHECK(single[0].filename() == "model.safetensors");
  CHECK(io::SafetensorsCheckpoint(one.path()).names().size() == 6);
  const auto s1 = io::inspect_path(single[0]);
  CHECK(s1["parameters"] == 56);
  CHECK(s1["metadata"].empty());
}
