// HDF5 (C++ API) round trip of a token array, chunked and compressed, with an attribute.
#include <H5Cpp.h>
#include <catch2/catch.hpp>

#include <numeric>

#include "support/test_util.h"

TEST_CASE("HDF5 round-trips a chunked, compressed token array", "[core][hdf5]") {
  biolm::test::TempDir dir("h5");
  const auto path = (dir / "tokens.h5").string();
  std::vector<int32_t> tokens(10007);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919) % 30522);
  {
    H5::H5File f(path, H5F_ACC_TRUNC);
    const hsize_t dims[1] = {tokens.size()};
    const hsize_t chunk[1] = {1024};
    H5::DSetCreatPropList plist;
    plist.setChunk(1, chunk);
    plist.setDeflate(4);
    H5::DataSpace space(1, dims);
    auto ds = f.createDataSet("tokens", H5::PredType::NATIVE_INT32, space, plist);
    ds.write(tokens.data(), H5::PredType::NATIVE_INT32);
    H5::DataSpace scalar(H5S_SCALAR);
    auto attr = ds.createAttribute("vocab_size", H5::PredType::NATIVE_INT64, scalar);
    const int64_t vocab = 30522;
    attr.write(H5::PredType::NATIVE_INT64, &vocab);
  }
  H5::H5File f(path, H5F_ACC_RDONLY);
  auto ds = f.openDataSet("tokens");
  hsize_t dims[1];
  ds.getSpace().getSimpleExtentDims(dims);
  REQUIRE(dims[0] == tokens.size());
  std::vector<int32_t> back(dims[0]);
  ds.read(back.data(), H5::PredType::NATIVE_INT32);
  REQUIRE(back == tokens);
  int64_t vocab = 0;
  ds.openAttribute("vocab_size").read(H5::PredType::NATIVE_INT64, &vocab);
  REQUIRE(vocab == 30522);
  // The same array as a LibTorch tensor without a copy.
  const auto t = torch::from_blob(back.data(), {static_cast<int64_t>(back.size())}, torch::kInt32);
  REQUIRE(t.sum().item<int64_t>() == std::accumulate(tokens.begin(), tokens.end(), int64_t{0}));
}
