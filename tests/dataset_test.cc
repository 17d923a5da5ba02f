// Datasets (issue 17): every format gives the same batches; named inputs
// bind to a model's inputs by name, with integer and bool inputs; .npz
// archives, stored and deflated; --limit for every format.
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "qat/data_spec.h"
#include "qat/dataset.h"
#include "qat/model_zoo.h"
#include "qat/npy.h"

namespace qat {
namespace {

using ::testing::HasSubstr;

std::string Dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/dataset_test_" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

uint32_t Crc(const std::string& s) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(s.data()),
                                     static_cast<uInt>(s.size())));
}

void Le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A zip of .npy members (method 0 stored, or 8 deflate), as numpy.savez and
// numpy.savez_compressed write them (without zip64, which cli.distill's
// numpy-written archive covers).
std::string Zip(const std::vector<std::pair<std::string, std::string>>& members, bool deflated) {
  std::string out, central;
  for (const auto& member : members) {
    const std::string& name = member.first;  // not a structured binding: the
    const std::string& data = member.second;  // lambda below captures them
    std::string packed = data;
    if (deflated) {
      z_stream z{};
      deflateInit2(&z, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      packed.assign(deflateBound(&z, data.size()), '\0');
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      z.avail_in = static_cast<uInt>(data.size());
      z.next_out = reinterpret_cast<Bytef*>(&packed[0]);
      z.avail_out = static_cast<uInt>(packed.size());
      ::deflate(&z, Z_FINISH);
      packed.resize(z.total_out);
      deflateEnd(&z);
    }
    const uint64_t offset = out.size();
    auto header = [&](std::string* h, bool local) {
      Le(h, local ? 0x04034b50 : 0x02014b50, 4);
      if (!local) Le(h, 20, 2);  // version made by
      Le(h, 20, 2);              // version needed
      Le(h, 0, 2);               // flags
      Le(h, deflated ? 8 : 0, 2);
      Le(h, 0, 4);  // time, date
      Le(h, Crc(data), 4);
      Le(h, packed.size(), 4);
      Le(h, data.size(), 4);
      Le(h, name.size(), 2);
      Le(h, 0, 2);  // extra
      if (!local) {
        Le(h, 0, 2);  // comment
        Le(h, 0, 2);  // disk
        Le(h, 0, 2);  // internal attributes
        Le(h, 0, 4);  // external attributes
        Le(h, offset, 4);
      }
      *h += name;
    };
    header(&out, true);
    out += packed;
    header(&central, false);
  }
  const uint64_t cd_offset = out.size();
  out += central;
  Le(&out, 0x06054b50, 4);
  Le(&out, 0, 4);
  Le(&out, members.size(), 2);
  Le(&out, members.size(), 2);
  Le(&out, central.size(), 4);
  Le(&out, cd_offset, 4);
  Le(&out, 0, 2);
  return out;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// 10 examples: ids int32 [10, 3] (widened to the model's int64), mask bool
// [10, 3], labels int64 [10].
struct Arrays {
  Tensor ids{DataType::kInt32, {10, 3}};
  Tensor mask{DataType::kBool, {10, 3}};
  Tensor labels{DataType::kInt64, {10}};
  Arrays() {
    for (int i = 0; i < 30; ++i) {
      ids.data<int32_t>()[i] = i * 7 % 50;
      mask.data<bool>()[i] = i % 3 != 2;
    }
    for (int i = 0; i < 10; ++i) labels.data<int64_t>()[i] = i % 4;
  }
};

std::vector<ValueInfo> TextInputs() {
  return {{"ids", DataType::kInt64, true, {-1, 3}}, {"mask", DataType::kBool, true, {-1, 3}}};
}

// Every batch of two shuffled epochs, batch 4 (so the last batch holds 2).
std::vector<std::map<std::string, Tensor>> Batches(const Dataset& d) {
  auto binding = d.Bind(TextInputs(), /*labels=*/true);
  EXPECT_TRUE(binding.ok()) << binding.status();
  std::vector<std::map<std::string, Tensor>> out;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const std::vector<int64_t> order = EpochOrder(d.size(), 7, epoch, true);
    for (int64_t begin = 0; begin < d.size(); begin += 4) {
      const int64_t n = std::min<int64_t>(4, d.size() - begin);
      std::map<std::string, Tensor> batch;
      EXPECT_TRUE(d.Gather(absl::MakeConstSpan(order).subspan(begin, n), *binding, &batch).ok());
      out.push_back(batch);
    }
  }
  return out;
}

void ExpectSameBatches(const std::vector<std::map<std::string, Tensor>>& a,
                       const std::vector<std::map<std::string, Tensor>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    for (const auto& [name, t] : a[i]) {
      const Tensor& u = b[i].at(name);
      ASSERT_EQ(t.dtype(), u.dtype()) << name;
      ASSERT_EQ(t.shape(), u.shape()) << name;
      EXPECT_EQ(0, std::memcmp(t.raw_data(), u.raw_data(), t.num_bytes())) << name << " batch " << i;
    }
  }
}

TEST(DatasetTest, EveryFormatGivesTheSameBatches) {
  Arrays a;
  auto memory = Dataset::FromInputs({{"ids", a.ids}, {"mask", a.mask}}, a.labels);
  ASSERT_TRUE(memory.ok()) << memory.status();
  const auto expected = Batches(*memory);
  ASSERT_EQ(expected.size(), 6u);
  EXPECT_EQ(expected[2].at("ids").dim(0), 2);  // the last partial batch
  EXPECT_EQ(expected[0].at("ids").dtype(), DataType::kInt64);  // widened for the model
  EXPECT_EQ(expected[0].at("labels").dim(0), 4);

  const std::string dir = Dir("folder");
  ASSERT_TRUE(WriteNpy(dir + "/ids.npy", a.ids).ok());
  ASSERT_TRUE(WriteNpy(dir + "/mask.npy", a.mask).ok());
  ASSERT_TRUE(WriteNpy(dir + "/labels.npy", a.labels).ok());
  WriteFile(dir + "/README.txt", "not an array");
  auto folder = Dataset::FromNpyFolder(dir);
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->num_inputs(), 2);
  EXPECT_TRUE(folder->has_labels());
  ExpectSameBatches(expected, Batches(*folder));

  const std::vector<std::pair<std::string, std::string>> members = {
      {"ids.npy", SerializeNpy(a.ids)},
      {"mask.npy", SerializeNpy(a.mask)},
      {"labels.npy", SerializeNpy(a.labels)}};
  for (bool deflate : {false, true}) {
    const std::string path = Dir("npz") + (deflate ? "/deflated.npz" : "/stored.npz");
    WriteFile(path, Zip(members, deflate));
    auto npz = Dataset::FromNpz(path);
    ASSERT_TRUE(npz.ok()) << npz.status();
    ExpectSameBatches(expected, Batches(*npz));
  }
}

TEST(DatasetTest, LimitKeepsTheFirstExamplesOfEveryFormat) {
  Arrays a;
  const std::string dir = Dir("limit");
  ASSERT_TRUE(WriteNpy(dir + "/ids.npy", a.ids).ok());
  ASSERT_TRUE(WriteNpy(dir + "/mask.npy", a.mask).ok());
  ASSERT_TRUE(WriteNpy(dir + "/features.npy", a.ids).ok());
  auto model = MakeMlp();
  ASSERT_TRUE(model.ok());
  DataSpecOptions options;
  options.limit = 4;
  for (const std::string& spec : {dir, dir + "/features.npy", dir + "/features.npy,"}) {
    auto d = LoadDataSpec(spec, *model, options);
    ASSERT_TRUE(d.ok()) << spec << ": " << d.status();
    EXPECT_EQ(d->size(), 4) << spec;
    EXPECT_EQ(d->input_shape(0)[0], 4) << spec;
    EXPECT_FALSE(d->has_labels()) << spec;
    // The mapped rows are the file's first rows.
    const Tensor& f = d->features();
    ASSERT_EQ(f.shape(), (std::vector<int64_t>{4, 3}));
    EXPECT_EQ(0, std::memcmp(f.raw_data(), a.ids.raw_data(), f.num_bytes())) << spec;
  }
}

TEST(DatasetTest, BindNamesWhatDoesNotMatch) {
  Arrays a;
  auto d = Dataset::FromInputs({{"ids", a.ids}, {"mask", a.mask}}, std::nullopt);
  ASSERT_TRUE(d.ok());
  // No labels, but a labelled loss.
  EXPECT_THAT(std::string(d->Bind(TextInputs(), true).status().message()),
              HasSubstr("has no labels"));
  // A model input the data lacks.
  std::vector<ValueInfo> three = TextInputs();
  three.push_back({"position_ids", DataType::kInt64, true, {-1, 3}});
  EXPECT_THAT(std::string(d->Bind(three, false).status().message()),
              HasSubstr("'position_ids'"));
  // A fixed dimension that differs, a type that does not convert.
  std::vector<ValueInfo> wide = TextInputs();
  wide[0].shape = {-1, 4};
  EXPECT_THAT(std::string(d->Bind(wide, false).status().message()), HasSubstr("does not fit"));
  std::vector<ValueInfo> floats = TextInputs();
  floats[1].dtype = DataType::kFloat32;
  EXPECT_THAT(std::string(d->Bind(floats, false).status().message()),
              HasSubstr("holds bool, but the model input 'mask' is float32"));
}

}  // namespace
}  // namespace qat
