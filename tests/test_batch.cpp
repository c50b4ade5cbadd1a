// cnnvis batch (cnnvis/batch.hpp): inputs from folders and manifests, shards, and runs that
// resume, retry failed pairs, refuse changed options and merge shards. On the demo model with
// seeded random weights, on small pictures written here.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cnnvis/batch.hpp"
#include "cnnvis/mpi.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/target.hpp"
#include "expect_error.hpp"

namespace cnnvis {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::expect_error;

class Batch : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cnnvis_batch_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A 40 x 40 picture of seeded noise at dir_/name.
  std::string picture(const std::string& name, int64_t seed) {
    const auto path = dir_ / name;
    fs::create_directories(path.parent_path());
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
    save_png(path.string(), torch::rand({3, 40, 40}, gen));
    return path.string();
  }
  std::string text(const std::string& name, const std::string& content) {
    const auto path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << content;
    return path.string();
  }
  static std::vector<json> rows(const fs::path& file) {
    std::vector<json> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) out.push_back(json::parse(line));
    }
    return out;
  }
  fs::path dir_;
};

std::unique_ptr<Model> demo_model() {
  torch::manual_seed(0);
  auto model = make_model("demo");
  model->module().eval();
  return model;
}

TEST_F(Batch, FoldersGiveImageFolderClasses) {
  const auto model = demo_model();
  const auto names = model->class_names();
  ASSERT_GE(names.size(), 3u);
  picture("set/" + names[2] + "/b.png", 1);
  picture("set/" + names[2] + "/a.png", 2);
  picture("set/" + names[0] + "/deep/c.jpg.png", 3);
  picture("set/.hidden/d.png", 4);
  text("set/" + names[0] + "/notes.txt", "not an image");
  auto inputs = batch::list_folder((dir_ / "set").string(), names, model->num_classes());
  ASSERT_EQ(inputs.size(), 3u);  // sorted by name; hidden folders and other files skipped
  EXPECT_EQ(inputs[0].name, names[0] + "/deep/c.jpg.png");
  EXPECT_EQ(inputs[0].target, 0);
  EXPECT_EQ(inputs[0].target_source, "folder");
  EXPECT_EQ(inputs[1].name, names[2] + "/a.png");
  EXPECT_EQ(inputs[1].target, 2);
  EXPECT_EQ(inputs[2].target, 2);
  // A class index names a class too; a folder that names none next to ones that do is refused.
  picture("idx/1/x.png", 5);
  EXPECT_EQ(batch::list_folder((dir_ / "idx").string(), names, model->num_classes())[0].target,
            1);
  picture("set/unknown/e.png", 6);
  expect_error([&] { batch::list_folder((dir_ / "set").string(), names, model->num_classes()); },
               "subfolder 'unknown' names no class");
  // As many unnamed folders as classes: ImageFolder's sorted order.
  for (int64_t c = model->num_classes() - 1; c >= 0; --c) {
    picture("wnid/n0" + std::to_string(100 + c) + "/i.png", c);
  }
  inputs = batch::list_folder((dir_ / "wnid").string(), names, model->num_classes());
  ASSERT_EQ(static_cast<int64_t>(inputs.size()), model->num_classes());
  for (int64_t c = 0; c < model->num_classes(); ++c) EXPECT_EQ(inputs[c].target, c);
  // Pictures in the folder itself, or other folders: no class.
  picture("flat/p.png", 7);
  picture("flat/2024/q.png", 8);
  for (const auto& in : batch::list_folder((dir_ / "flat").string(), names, 1000)) {
    EXPECT_EQ(in.target, -1) << in.name;
  }
  expect_error([&] { batch::list_folder((dir_ / "none").string(), names, 10); },
               "no such folder");
  fs::create_directories(dir_ / "empty");
  expect_error([&] { batch::list_folder((dir_ / "empty").string(), names, 10); }, "no image");
}

TEST_F(Batch, ManifestsListPathsAndTargets) {
  const auto model = demo_model();
  const auto names = model->class_names();
  const auto csv = text("m/list.csv", "path,target\n# a comment\n\nb.png," + names[1] +
                                          "\r\n\"sub/a, b.png\",2\n/abs/c.png\n../d.png,\n");
  const auto inputs = batch::read_manifest(csv, names, model->num_classes());
  ASSERT_EQ(inputs.size(), 4u);
  std::map<std::string, batch::Input> by_name;
  for (const auto& in : inputs) by_name[in.name] = in;
  EXPECT_EQ(by_name.at("b.png").target, 1);
  EXPECT_EQ(by_name.at("b.png").target_source, "manifest");
  EXPECT_EQ(by_name.at("b.png").path, (dir_ / "m" / "b.png").string());
  EXPECT_EQ(by_name.at("sub/a, b.png").target, 2);
  EXPECT_EQ(by_name.at("abs/c.png").path, "/abs/c.png");  // inside the output folder
  EXPECT_EQ(by_name.at("abs/c.png").target, -1);
  EXPECT_EQ(by_name.at("up/d.png").target, -1);
  const auto refused = [&](const std::string& content, const std::string& part) {
    const auto f = text("m/bad.csv", content);
    expect_error([&] { batch::read_manifest(f, names, model->num_classes()); }, part);
  };
  refused("a.png\nb.png,nosuchclass\n", "bad.csv line 2: target");
  refused("a.png\na.png\n", "line 2: a.png again (first on line 1)");
  refused("a.png,1,2\n", "line 1: expected path[,target], got 3 fields");
  refused("\"a.png\n", "line 1: a quote is not closed");
  refused("path,target\n", "no image listed");
  expect_error([&] { batch::read_manifest((dir_ / "no.csv").string(), names, 3); },
               "no such file");
}

TEST_F(Batch, ShardsPartitionTheSortedInputs) {
  EXPECT_EQ(batch::parse_shard("3/16").index, 3);
  EXPECT_EQ(batch::parse_shard("3/16").count, 16);
  for (const std::string bad : {"16/16", "1/0", "-1/4", "a/b", "3", "1/2/3", ""}) {
    expect_error([&] { batch::parse_shard(bad); }, "--shard " + bad + ": expected K/N");
  }
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  EXPECT_EQ(batch::parse_shard("auto").count, 1);  // not in a job array
  ::setenv("SLURM_ARRAY_TASK_ID", "7", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
  ::setenv("SLURM_ARRAY_TASK_MIN", "5", 1);
  EXPECT_EQ(batch::parse_shard("auto").index, 2);
  EXPECT_EQ(batch::parse_shard("auto").count, 4);
  ::setenv("SLURM_ARRAY_TASK_ID", "9", 1);
  expect_error([] { batch::parse_shard("auto"); }, "task 9 is not among the 4 tasks from 5");
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  ::unsetenv("SLURM_ARRAY_TASK_COUNT");
  ::unsetenv("SLURM_ARRAY_TASK_MIN");
  EXPECT_EQ(batch::results_file_name({0, 1}), "results.jsonl");
  EXPECT_EQ(batch::results_file_name({3, 16}), "results.shard-3-of-16.jsonl");
  EXPECT_EQ(batch::rank_results_file_name(0, 4), "results.jsonl");
  EXPECT_EQ(batch::rank_results_file_name(1, 4), "results.rank-1-of-4.jsonl");
  std::vector<batch::Input> inputs;
  for (int i = 9; i >= 0; --i) inputs.push_back({"", "img" + std::to_string(i) + ".png", -1, ""});
  std::multiset<std::string> seen;
  for (int64_t k = 0; k < 3; ++k) {
    const auto part = batch::shard_inputs(inputs, {k, 3});
    EXPECT_EQ(part.size(), k == 0 ? 4u : 3u);
    for (const auto& in : part) seen.insert(in.name);
    EXPECT_EQ(part.front().name, "img" + std::to_string(k) + ".png");  // round robin
  }
  EXPECT_EQ(seen.size(), 10u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 10u);  // disjoint
}

// A run: every pair once, the raw results those of the method called directly, a bad image as
// error rows; a rerun skips the done pairs and tries the failed ones again; a cut last line and
// a killed run's temporary file are cleaned up; other options are refused.
TEST_F(Batch, RunsResumeAndRefuseOtherOptions) {
  auto model = demo_model();
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i) paths.push_back(picture("in/p" + std::to_string(i) + ".png", i));
  text("in/broken.png", "\x89PNG\r\n\x1a\nnot really");
  auto inputs = batch::list_folder((dir_ / "in").string(), model->class_names(), 10);
  ASSERT_EQ(inputs.size(), 5u);
  batch::BatchOptions o;
  o.methods = {{"vanilla", {}}, {"grad-cam", {}}};
  o.out = (dir_ / "out").string();
  o.raw = true;
  o.batch = 2;
  o.preprocess.size = 40;
  o.target = 1;
  o.config = R"({"model": "demo", "methods": "vanilla,grad-cam"})";
  int64_t calls = 0;
  o.progress = [&](const batch::Progress& p) {
    ++calls;
    EXPECT_LE(p.images_done, p.images_total);
  };
  const auto first = batch::run(*model, inputs, o);
  EXPECT_EQ(first.images, 5);
  EXPECT_EQ(first.pairs, 10);
  EXPECT_EQ(first.computed, 8);
  EXPECT_EQ(first.skipped, 0);
  ASSERT_EQ(first.failures.size(), 2u);
  EXPECT_EQ(first.failures[0].image, "broken.png");
  EXPECT_GT(calls, 0);
  const fs::path results = dir_ / "out" / "results.jsonl";
  auto table = rows(results);
  ASSERT_EQ(table.size(), 10u);
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& r : table) {
    pairs.emplace(r["image"], r["method"]);
    if (r["image"] == "broken.png") {
      EXPECT_EQ(r["status"], "error");
      EXPECT_NE(r["error"].get<std::string>().find("broken.png"), std::string::npos) << r;
      continue;
    }
    EXPECT_EQ(r["status"], "ok") << r;
    EXPECT_EQ(r["target"], 1);
    EXPECT_EQ(r["target_source"], "--target");
    EXPECT_GE(r["predicted"].get<int64_t>(), 0);
    EXPECT_GT(r["probability"].get<double>(), 0);
    EXPECT_GT(r["ms"].get<double>(), 0);
    for (const auto& f : r["files"]) EXPECT_TRUE(fs::exists(dir_ / "out" / f.get<std::string>())) << f;
  }
  EXPECT_EQ(pairs.size(), 10u);
  // The raw result is the method's on that image alone (float32: rounding of a batch of 2).
  const auto x = load_input(paths[3], o.preprocess);
  const auto direct = make_method("grad-cam")->explain(*model, x, Target::class_logit(1)).raw;
  const auto saved = load_npy((dir_ / "out" / "p3_grad-cam.npy").string());
  ASSERT_EQ(saved.sizes(), direct.sizes());
  EXPECT_TRUE(torch::allclose(saved, direct, 1e-4, 1e-5 * direct.abs().max().item<double>()));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "p0_vanilla_color.png"));

  // A killed run: a row cut short, a temporary file of a dead process, an output without its
  // row (the kill came between the rename and the append).
  std::string kept;
  {
    std::ifstream in(results);
    std::stringstream ss;
    ss << in.rdbuf();
    kept = ss.str();
  }
  std::string without_p2;
  std::istringstream lines(kept);
  for (std::string line; std::getline(lines, line);) {
    if (json::parse(line)["image"] != "p2.png" || json::parse(line)["method"] != "vanilla") {
      without_p2 += line + "\n";
    }
  }
  std::ofstream(results, std::ios::binary) << without_p2 << R"({"image": "p1.png", "met)";
  text("out/p2_vanilla_gray.png.tmp-999999999", "partial");
  text("out/unrelated.png.tmp-999999999", "not ours");
  const auto second = batch::run(*model, inputs, o);
  EXPECT_EQ(second.skipped, 7);
  EXPECT_EQ(second.computed, 1);          // p2 vanilla
  EXPECT_EQ(second.failures.size(), 2u);  // broken.png, tried again
  table = rows(results);
  ASSERT_EQ(table.size(), 10u);  // every pair exactly once
  pairs.clear();
  for (const auto& r : table) pairs.emplace(r["image"], r["method"]);
  EXPECT_EQ(pairs.size(), 10u);
  EXPECT_FALSE(fs::exists(dir_ / "out" / "p2_vanilla_gray.png.tmp-999999999"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "unrelated.png.tmp-999999999"));  // not this run's

  // Other options into the same folder are refused before any work.
  o.config = R"({"model": "demo", "methods": "vanilla"})";
  expect_error([&] { batch::run(*model, inputs, o); },
               "holds a run with other options (methods: \"vanilla,grad-cam\", now \"vanilla\")");
  // A method's usage error (a layer the model lacks) stops the run instead of failing each image.
  batch::BatchOptions bad = o;
  bad.out = (dir_ / "bad").string();
  bad.methods = {{"grad-cam", {{"layer", "nosuchlayer"}}}};
  inputs.erase(inputs.begin());  // broken.png
  EXPECT_THROW(batch::run(*model, inputs, bad), Error);
}

TEST_F(Batch, ShardsWriteTheirOwnFilesAndMerge) {
  auto model = demo_model();
  for (int i = 0; i < 5; ++i) picture("in/p" + std::to_string(i) + ".png", i);
  const auto inputs = batch::list_folder((dir_ / "in").string(), model->class_names(), 10);
  batch::BatchOptions o;
  o.methods = {{"grad-cam", {}}};
  o.out = (dir_ / "out").string();
  o.png = false;
  o.raw = true;
  o.preprocess.size = 40;
  o.config = "{}";
  for (int64_t k = 0; k < 2; ++k) {
    o.shard = {k, 2};
    const auto s = batch::run(*model, inputs, o);
    EXPECT_EQ(s.images, k == 0 ? 3 : 2);
    EXPECT_EQ(s.computed, s.images);
    EXPECT_TRUE(fs::exists(dir_ / "out" / batch::results_file_name(o.shard)));
  }
  EXPECT_EQ(rows(dir_ / "out" / "results.shard-0-of-2.jsonl").size(), 3u);
  // An MPI rank's file (as a killed job leaves it) merges the same way.
  fs::rename(dir_ / "out" / "results.shard-1-of-2.jsonl", dir_ / "out" / "results.rank-1-of-2.jsonl");
  EXPECT_EQ(batch::merge(o.out), 5);
  EXPECT_FALSE(fs::exists(dir_ / "out" / "results.shard-0-of-2.jsonl"));
  EXPECT_FALSE(fs::exists(dir_ / "out" / "results.rank-1-of-2.jsonl"));
  const auto table = rows(dir_ / "out" / "results.jsonl");
  ASSERT_EQ(table.size(), 5u);
  EXPECT_EQ(table[0]["image"], "p0.png");  // sorted
  for (const auto& r : table) {
    EXPECT_EQ(r["status"], "ok");
    EXPECT_EQ(r["target_source"], "top-1");
    EXPECT_EQ(r["target"], r["predicted"]);
  }
  // The whole set afterwards: nothing left to do.
  o.shard = {0, 1};
  const auto all = batch::run(*model, inputs, o);
  EXPECT_EQ(all.skipped, 5);
  EXPECT_EQ(all.computed, 0);
  expect_error([&] { batch::merge((dir_ / "in").string()); }, "no results.jsonl");
}

// Without mpirun: one process of one, a Session that does nothing, exchanges that are no-ops
// or refused.
TEST(Mpi, OneProcessWithoutMpirun) {
  ASSERT_FALSE(mpi::launched());  // ctest does not run this under mpirun
  mpi::Session session;
  EXPECT_EQ(mpi::rank(), 0);
  EXPECT_EQ(mpi::size(), 1);
  EXPECT_FALSE(mpi::distributed());
  std::vector<double> v{1, 2};
  mpi::sum(v);
  EXPECT_EQ(v, (std::vector<double>{1, 2}));
  EXPECT_EQ(mpi::gather("x"), std::vector<std::string>{"x"});
  mpi::barrier();
  mpi::abort_on_error(1);  // returns
  expect_error([] { mpi::send(1, 0, "x"); }, "no MPI session with more than one process");
  ::setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3", 1);
  EXPECT_EQ(mpi::local_size(), 3);
  ::unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
#ifdef CNNVIS_TEST_WITH_MPI
  EXPECT_TRUE(mpi::available());
  EXPECT_NE(mpi::library_version(), "");
#else
  // Built without MPI (as scripts/check-libtorch2.sh builds it): started by mpirun, it says so.
  EXPECT_FALSE(mpi::available());
  ::setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
  expect_error([] { mpi::Session s; }, "cnnvis was built without MPI; install libopenmpi-dev");
  ::unsetenv("OMPI_COMM_WORLD_SIZE");
#endif
}

}  // namespace
}  // namespace cnnvis
