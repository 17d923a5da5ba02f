// The calibration table: round trips, the documented example, every load
// error, atomic saves, merging, and the AIMET export.
#include "qat/calibration_table.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace qat {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A fresh, empty folder under the test's temporary directory.
std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/qat_calib_" + name + "_" +
                    std::to_string(getpid());
  std::system(("rm -rf '" + dir + "'").c_str());
  mkdir(dir.c_str(), 0755);
  return dir;
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(d);
  }
  return names;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// uint8 activation over [-1, 2]: scale 3 / 255, zero point 85.
CalibrationEntry Activation(float rmin = -1.0f, float rmax = 2.0f) {
  auto e = MakeCalibrationEntry(TensorRole::kActivation, QuantType::kUInt8,
                                CalibrationMethod::kPercentile, false, false,
                                std::nullopt, {{rmin, rmax, rmin, rmax}});
  EXPECT_TRUE(e.ok()) << e.status();
  return *e;
}

// int8 symmetric weight, per channel along axis 0: [-0.5, 0.5] and
// [-0.25, 0.125] give scales 1 / 254 and 0.5 / 254, zero points 0.
CalibrationEntry Weight() {
  auto e = MakeCalibrationEntry(TensorRole::kWeight, QuantType::kInt8,
                                CalibrationMethod::kMinMax, true, false, 0,
                                {{-0.5f, 0.5f, -0.5f, 0.5f},
                                 {-0.25f, 0.125f, -0.25f, 0.125f}});
  EXPECT_TRUE(e.ok()) << e.status();
  return *e;
}

CalibrationTable Sample() {
  CalibrationTable t;
  EXPECT_TRUE(t.Set("input", Activation()).ok());
  EXPECT_TRUE(t.Set("fc1.weight", Weight()).ok());
  return t;
}

void ExpectSameEntry(const CalibrationEntry& a, const CalibrationEntry& b) {
  EXPECT_EQ(a.role, b.role);
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.symmetric, b.symmetric);
  EXPECT_EQ(a.reduce_range, b.reduce_range);
  EXPECT_EQ(a.axis, b.axis);
  EXPECT_EQ(a.rmin, b.rmin);
  EXPECT_EQ(a.rmax, b.rmax);
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.zero_point, b.zero_point);
}

void ExpectSameTable(const CalibrationTable& a, const CalibrationTable& b) {
  ASSERT_EQ(a.entries().size(), b.entries().size());
  for (const auto& [name, entry] : a.entries()) {
    SCOPED_TRACE(name);
    const CalibrationEntry* other = b.Find(name);
    ASSERT_NE(other, nullptr);
    ExpectSameEntry(entry, *other);
  }
}

TEST(CalibrationTableTest, MakeEntryComputesParams) {
  const CalibrationEntry a = Activation();
  EXPECT_THAT(a.scale, ElementsAre(static_cast<float>(3.0 / 255.0)));
  EXPECT_THAT(a.zero_point, ElementsAre(85));
  EXPECT_EQ(a.bits(), 8);
  const CalibrationEntry w = Weight();
  EXPECT_THAT(w.scale, ElementsAre(static_cast<float>(1.0 / 254.0),
                                   static_cast<float>(0.5 / 254.0)));
  EXPECT_THAT(w.zero_point, ElementsAre(0, 0));
  EXPECT_EQ(w.quant_range().quant_min, -127);
}

TEST(CalibrationTableTest, JsonRoundTripIsExact) {
  CalibrationTable t = Sample();
  // Values that need all nine digits of a float survive too.
  CalibrationEntry odd = Activation(-0.1f, 2.9f);
  odd.rmin = {-0.100000001f};
  ASSERT_TRUE(t.Set("odd", odd).ok());
  auto json = t.ToJson();
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("\"version\": 1"));
  EXPECT_THAT(*json, HasSubstr("\"type\": \"uint8\""));
  EXPECT_THAT(*json, HasSubstr("\"zero_point\": 85"));
  EXPECT_THAT(*json, HasSubstr("\"axis\": 0"));
  EXPECT_THAT(*json, HasSubstr("\"rmin\": -1,"));  // shortest form, a number
  auto back = CalibrationTable::FromJson(*json, "memory");
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameTable(t, *back);
  // Printing is deterministic.
  EXPECT_EQ(*back->ToJson(), *json);
}

TEST(CalibrationTableTest, SaveAndLoad) {
  const std::string dir = TempDir("save");
  const std::string path = dir + "/table.json";
  const CalibrationTable t = Sample();
  ASSERT_TRUE(t.Save(path).ok());
  auto loaded = CalibrationTable::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameTable(t, *loaded);
  // Saving again replaces the file and leaves no temporary file behind.
  CalibrationTable smaller;
  ASSERT_TRUE(smaller.Set("x", Activation(0.0f, 1.0f)).ok());
  ASSERT_TRUE(smaller.Save(path).ok());
  EXPECT_THAT(FilesIn(dir), ElementsAre("table.json"));
  auto reloaded = CalibrationTable::Load(path);
  ASSERT_TRUE(reloaded.ok());
  EXPECT_EQ(reloaded->entries().size(), 1u);
}

TEST(CalibrationTableTest, FailedSaveLeavesEverythingAsItWas) {
  const std::string dir = TempDir("fail");
  // The target is a folder: the rename fails after the data was written.
  const std::string target = dir + "/table.json";
  mkdir(target.c_str(), 0755);
  WriteAll(target + "/keep", "precious");
  absl::Status s = Sample().Save(target);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(target));
  EXPECT_THAT(FilesIn(dir), ElementsAre("table.json"));  // no temporary file
  EXPECT_EQ(ReadAll(target + "/keep"), "precious");
  // A folder that does not exist.
  s = Sample().Save(dir + "/missing/table.json");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("missing/table.json"));
}

TEST(CalibrationTableTest, TheDocumentedExampleLoads) {
  // The example in docs/calibration.md.
  const char* kExample = R"({
  "version": 1,
  "tensors": {
    "input": {
      "role": "activation", "type": "uint8", "bits": 8, "method": "percentile",
      "symmetric": false, "reduce_range": false,
      "rmin": -1, "rmax": 2, "scale": 0.011764706, "zero_point": 85
    },
    "fc1.weight": {
      "role": "weight", "type": "int8", "bits": 8, "method": "minmax",
      "symmetric": true, "reduce_range": false, "axis": 0,
      "rmin": [-0.5, -0.25], "rmax": [0.5, 0.125],
      "scale": [0.003937008, 0.001968504], "zero_point": [0, 0]
    }
  }
})";
  auto t = CalibrationTable::FromJson(kExample, "calibration.md");
  ASSERT_TRUE(t.ok()) << t.status();
  ExpectSameTable(*t, Sample());
}

// A valid per-tensor entry with one field replaced.
std::string TableWith(const std::string& field, const std::string& value) {
  std::string entry = R"("role": "activation", "type": "uint8", "bits": 8,
      "method": "minmax", "rmin": -1, "rmax": 2, "scale": 0.5, "zero_point": 3)";
  const size_t at = entry.find("\"" + field + "\"");
  if (at == std::string::npos) {
    entry += ", \"" + field + "\": " + value;
  } else {
    const size_t end = entry.find_first_of(",", at);
    entry.replace(at, (end == std::string::npos ? entry.size() : end) - at,
                  "\"" + field + "\": " + value);
  }
  return "{\"version\": 1, \"tensors\": {\"t\": {" + entry + "}}}";
}

TEST(CalibrationTableTest, LoadErrorsNameTheFileAndTheProblem) {
  const std::string dir = TempDir("errors");
  auto load = [&](const std::string& text) {
    const std::string path = dir + "/t.json";
    WriteAll(path, text);
    return CalibrationTable::Load(path).status();
  };
  auto expect = [&](const std::string& text, const std::string& fragment) {
    SCOPED_TRACE(text);
    const absl::Status s = load(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(dir + "/t.json"));
    EXPECT_THAT(std::string(s.message()), HasSubstr(fragment));
  };
  ASSERT_TRUE(load(TableWith("scale", "0.5")).ok());  // the baseline is valid

  const absl::Status missing = CalibrationTable::Load(dir + "/nope.json").status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr(dir + "/nope.json"));

  expect("{\"version\": 1, \"tensors\": {", "not a valid table");
  expect("[1, 2]", "not a valid table");
  expect(TableWith("scael", "0.5"), "not a valid table");  // unknown field
  expect("{\"tensors\": {}}", "\"version\" must be 1, got 0 (missing?)");
  expect("{\"version\": 2, \"tensors\": {}}", "\"version\" must be 1, got 2");
  expect(TableWith("scale", "0"), "tensor 't': scale[0] must be positive and finite, got 0");
  expect(TableWith("scale", "-0.5"), "scale[0] must be positive");
  expect(TableWith("scale", "\"NaN\""), "'scale' must be a number");
  expect(TableWith("scale", "1e300"), "scale[0] must be positive and finite, got inf");
  expect(TableWith("zero_point", "300"),
         "zero_point[0] = 300 is outside [0, 255] for uint8");
  expect(TableWith("zero_point", "2.5"), "zero_point[0] must be an integer, got 2.5");
  // 255 fits uint8, but not the symmetric range [0, 254].
  ASSERT_TRUE(load(TableWith("zero_point", "255")).ok());
  expect(TableWith("zero_point", "255, \"symmetric\": true"),
         "zero_point[0] = 255 is outside [0, 254] for uint8 symmetric");
  expect(TableWith("rmin", "3"), "must be finite with rmin <= rmax, got [3, 2]");
  // Since issue 15 a uint8 entry may hold a 2..8-bit grid ("bits": 4 is the
  // grid [0, 15], which zero_point 3 fits); wider or narrower is an error.
  ASSERT_TRUE(load(TableWith("bits", "4")).ok());
  expect(TableWith("bits", "9"), "bits is 9 but type uint8 holds 2 to 8");
  expect(TableWith("bits", "1"), "bits is 1 but type uint8 holds 2 to 8");
  expect(TableWith("bits", "2, \"range\": \"narrow\""), "zero_point[0] = 3 is outside [0, 2]");
  expect(TableWith("range", "\"wide\""), "unknown range mode 'wide'");
  expect(TableWith("type", "\"int9\""), "unknown quantized type 'int9'");
  expect(TableWith("role", "\"bias\""), "role must be \"activation\" or \"weight\"");
  expect(TableWith("method", "\"kl\""), "unknown calibration method 'kl'");
  expect(TableWith("scale", "[0.5]"), "'scale' must be a number (arrays need an \"axis\")");
  expect(TableWith("axis", "0"), "'rmin' must be an array of numbers");
  // Per channel with arrays of different lengths.
  expect(R"({"version": 1, "tensors": {"w": {"role": "weight", "type": "int8",
      "bits": 8, "method": "minmax", "axis": 0, "rmin": [-1, -1], "rmax": [1, 1],
      "scale": [0.5, 0.5], "zero_point": [0, 0, 0]}}})",
         "tensor 'w': zero_point has 3 values but scale has 2");
  expect(R"({"version": 1, "tensors": {"w": {"role": "weight", "type": "int8",
      "bits": 8, "method": "minmax", "axis": 0, "rmin": [-1, "x"], "rmax": [1, 1],
      "scale": [0.5, 0.5], "zero_point": [0, 0]}}})",
         "'rmin'[1] is not a number");
}

// Arrays (or objects) nested deeper than kMaxJsonDepth are refused by a
// linear scan before protobuf's JSON parser, whose time grows with the square
// of the depth, sees them (before: 32k levels took 31 s, 100k minutes).
TEST(CalibrationTableTest, DeeplyNestedJsonIsRefusedBeforeParsing) {
  const std::string dir = TempDir("deep");
  const std::string limit = absl::StrCat("JSON nested deeper than ",
                                         CalibrationTable::kMaxJsonDepth, " levels");
  for (int depth : {1000, 32000, 100000}) {
    SCOPED_TRACE(depth);
    const std::string path = absl::StrCat(dir, "/deep", depth, ".json");
    WriteAll(path, TableWith("scale", std::string(depth, '[') + "0.5" + std::string(depth, ']')));
    const absl::Status s = CalibrationTable::Load(path).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(path));
    EXPECT_THAT(std::string(s.message()), HasSubstr(limit));
  }
  // Objects count too.
  std::string objects;
  for (int i = 0; i < 1000; ++i) objects += "{\"a\": ";
  objects += "1" + std::string(1000, '}');
  EXPECT_THAT(std::string(CalibrationTable::FromJson(objects, "o.json").status().message()),
              HasSubstr(limit));
  // Brackets inside strings, escaped quotes included, do not.
  const std::string name = "t\\\"" + std::string(200, '[');
  const std::string table = TableWith("scale", "0.5");
  const std::string renamed = "{\"version\": 1, \"tensors\": {\"" + name +
                              table.substr(table.find("\"t\": {") + 2);
  auto t = CalibrationTable::FromJson(renamed, "strings.json");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_NE(t->Find("t\"" + std::string(200, '[')), nullptr);
}

TEST(CalibrationTableTest, SetValidates) {
  CalibrationTable t = Sample();
  CalibrationEntry bad = Activation();
  bad.scale = {-1.0f};
  const absl::Status s = t.Set("input", bad);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 'input': scale[0]"));
  EXPECT_EQ(t.Find("input")->scale[0], static_cast<float>(3.0 / 255.0));  // kept
  bad = Activation();
  bad.rmin = {-1.0f, -2.0f};
  bad.rmax = {1.0f, 2.0f};
  bad.zero_point = {0, 0};
  bad.scale = {0.1f, 0.1f};
  EXPECT_THAT(std::string(t.Set("x", bad).message()),
              HasSubstr("a per-tensor entry holds one value, scale holds 2"));
  EXPECT_EQ(t.Find("x"), nullptr);
}

TEST(CalibrationTableTest, MergeReplace) {
  CalibrationTable ours = Sample();
  CalibrationTable theirs;
  ASSERT_TRUE(theirs.Set("input", Activation(0.0f, 4.0f)).ok());
  ASSERT_TRUE(theirs.Set("extra", Activation()).ok());
  ASSERT_TRUE(ours.Merge(theirs, MergeRule::kReplace).ok());
  EXPECT_EQ(ours.entries().size(), 3u);
  EXPECT_EQ(ours.Find("input")->rmax[0], 4.0f);
  EXPECT_EQ(ours.Find("fc1.weight")->num_channels(), 2);
}

TEST(CalibrationTableTest, MergeUnionOfRanges) {
  CalibrationTable ours;
  ASSERT_TRUE(ours.Set("input", Activation(-1.0f, 1.0f)).ok());
  CalibrationTable theirs;
  ASSERT_TRUE(theirs.Set("input", Activation(-0.5f, 2.0f)).ok());
  ASSERT_TRUE(ours.Merge(theirs, MergeRule::kUnionOfRanges).ok());
  // [-1, 1] and [-0.5, 2] give [-1, 2]: scale 3 / 255, zero point 85.
  const CalibrationEntry* e = ours.Find("input");
  EXPECT_EQ(e->rmin[0], -1.0f);
  EXPECT_EQ(e->rmax[0], 2.0f);
  EXPECT_EQ(e->scale[0], static_cast<float>(3.0 / 255.0));
  EXPECT_EQ(e->zero_point[0], 85);

  // Entries that disagree cannot be united, and nothing changes.
  CalibrationTable other_type;
  CalibrationEntry int8 = Activation();
  int8.type = QuantType::kInt8;
  int8.zero_point = {-43};
  ASSERT_TRUE(other_type.Set("input", int8).ok());
  ASSERT_TRUE(other_type.Set("new", Activation()).ok());
  const absl::Status s = ours.Merge(other_type, MergeRule::kUnionOfRanges);
  EXPECT_THAT(std::string(s.message()), HasSubstr("tensor 'input': cannot take the union"));
  EXPECT_EQ(ours.Find("new"), nullptr);
  EXPECT_EQ(ours.Find("input")->type, QuantType::kUInt8);
}

const google::protobuf::Value& Field(const google::protobuf::Value& v,
                                     const std::string& name) {
  return v.struct_value().fields().at(name);
}

TEST(CalibrationTableTest, AimetExport) {
  auto json = Sample().ToAimetEncodings();
  ASSERT_TRUE(json.ok()) << json.status();
  google::protobuf::Value root;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &root).ok()) << *json;
  EXPECT_EQ(Field(root, "version").string_value(), "0.6.1");

  // uint8 [-1, 2], zero point 85: offset = 0 - 85 = -85,
  // min = -85 * scale = -1, max = (-85 + 255) * scale = 2.
  const auto& act = Field(Field(root, "activation_encodings"), "input").list_value();
  ASSERT_EQ(act.values_size(), 1);
  const auto& a = act.values(0);
  EXPECT_EQ(Field(a, "bitwidth").number_value(), 8);
  EXPECT_EQ(Field(a, "dtype").string_value(), "int");
  EXPECT_EQ(Field(a, "is_symmetric").string_value(), "False");
  EXPECT_EQ(Field(a, "offset").number_value(), -85);
  EXPECT_EQ(static_cast<float>(Field(a, "min").number_value()), -1.0f);
  EXPECT_EQ(static_cast<float>(Field(a, "max").number_value()), 2.0f);
  EXPECT_EQ(static_cast<float>(Field(a, "scale").number_value()),
            static_cast<float>(3.0 / 255.0));

  // int8 symmetric on [-127, 127], zero point 0: offset = -127 - 0; one
  // encoding per channel; max = (-127 + 255) * scale.
  const auto& w = Field(Field(root, "param_encodings"), "fc1.weight").list_value();
  ASSERT_EQ(w.values_size(), 2);
  for (int c = 0; c < 2; ++c) {
    const auto& e = w.values(c);
    const double scale = c == 0 ? 1.0 / 254.0 : 0.5 / 254.0;
    EXPECT_EQ(Field(e, "is_symmetric").string_value(), "True");
    EXPECT_EQ(Field(e, "offset").number_value(), -127);
    EXPECT_NEAR(Field(e, "min").number_value(), -127 * scale, 1e-7);
    EXPECT_NEAR(Field(e, "max").number_value(), 128 * scale, 1e-7);
  }
  EXPECT_EQ(Field(root, "activation_encodings").struct_value().fields().count("fc1.weight"),
            0u);
}

}  // namespace
}  // namespace qat
