#include "cnnvis/batch.hpp"

#include <fcntl.h>
#include <omp.h>
#include <signal.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "cnnvis/error.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/io/file.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/model.hpp"
#include "cnnvis/mpi.hpp"
#include "cnnvis/target.hpp"

namespace cnnvis::batch {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_image_file(const fs::path& p) {
  static const std::set<std::string> kinds = {".png", ".jpg", ".jpeg", ".bmp",
                                              ".tif", ".tiff", ".webp"};
  return kinds.count(lower(p.extension().string())) > 0;
}

// The class an index or name stands for, or -1.
int64_t class_of(const std::string& text, const std::vector<std::string>& names,
                 int64_t num_classes) {
  try {
    return resolve_class(text, names, num_classes);
  } catch (const Error&) {
    return -1;
  }
}

// A path as written in a manifest -> a name that stays inside the output folder: no root, no
// "." parts, ".." as "up".
std::string safe_name(const std::string& written) {
  fs::path out;
  for (const auto& part : fs::path(written).lexically_normal()) {
    const std::string s = part.string();
    if (s.empty() || s == "/" || s == "." || part == fs::path(written).root_path()) continue;
    out /= s == ".." ? std::string("up") : s;
  }
  return out.generic_string();
}

// The fields of one CSV line (double quotes, "" for a quote); false for an open quote.
bool csv_fields(const std::string& line, std::vector<std::string>& fields) {
  fields.assign(1, "");
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  for (auto& f : fields) {
    const auto b = f.find_first_not_of(" \t");
    const auto e = f.find_last_not_of(" \t");
    f = b == std::string::npos ? "" : f.substr(b, e - b + 1);
  }
  return !quoted;
}

// The output stem of an input: its name without the extension.
std::string stem_of(const Input& input) {
  const fs::path p(input.name);
  return (p.parent_path() / p.stem()).generic_string();
}

// One results file's complete rows. A last line without its newline (a write cut by a kill)
// is not a row; `complete_bytes` is where the complete lines end. A complete line that is not
// a row is an error naming the file and the line.
std::vector<json> read_rows(const fs::path& file, size_t* complete_bytes = nullptr) {
  const std::string text = read_regular_file(file.string(), "results file");
  std::vector<json> rows;
  size_t start = 0, line_no = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // cut short: not a row
    ++line_no;
    const std::string line = text.substr(start, end - start);
    if (!line.empty()) {
      json row;
      try {
        row = json::parse(line);
      } catch (const std::exception&) {
        throw Error(file.string() + " line " + std::to_string(line_no) +
                    ": not a JSON row of cnnvis batch; move the file away or fix the line");
      }
      if (!row.is_object() || !row.contains("image") || !row.contains("method") ||
          !row.contains("status")) {
        throw Error(file.string() + " line " + std::to_string(line_no) +
                    ": a row needs image, method and status; move the file away or fix it");
      }
      rows.push_back(std::move(row));
    }
    start = end + 1;
  }
  if (complete_bytes) *complete_bytes = start;
  return rows;
}

bool is_results_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.rfind("results", 0) == 0 && p.extension() == ".jsonl" &&
         (name == "results.jsonl" || name.rfind("results.shard-", 0) == 0 ||
          name.rfind("results.rank-", 0) == 0);
}

std::vector<fs::path> results_files(const fs::path& folder) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    if (e.is_regular_file() && is_results_file(e.path())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The first key whose value differs between two JSON objects, "" if none.
std::string first_difference(const json& a, const json& b) {
  std::set<std::string> keys;
  for (const auto& [k, v] : a.items()) keys.insert(k);
  for (const auto& [k, v] : b.items()) keys.insert(k);
  for (const auto& k : keys) {
    if (!a.contains(k) || !b.contains(k) || a[k] != b[k]) return k;
  }
  return "";
}

// A bounded queue between two threads; close() ends it.
template <typename T>
class Channel {
 public:
  explicit Channel(size_t capacity) : capacity_(capacity) {}
  // False when closed.
  bool push(T item) {
    std::unique_lock<std::mutex> lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    not_empty_.notify_one();
    return true;
  }
  // Empty when closed and drained.
  std::optional<T> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_empty_, not_full_;
  std::deque<T> items_;
  bool closed_ = false;
};

// Appends whole lines to a results file: each line is one write(2) on an O_APPEND descriptor,
// so a kill leaves at most a last line without its newline, which read_rows skips.
class Appender {
 public:
  explicit Appender(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw Error(path + ": cannot open the results file for appending (" +
                  std::strerror(errno) + "); check the folder's permissions");
    }
  }
  ~Appender() {
    if (fd_ >= 0) ::close(fd_);
  }
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;
  void append(const std::string& line) {
    const std::string text = line + "\n";
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        throw Error(path_ + ": cannot append a row (" + std::strerror(errno) +
                    "); check the free space");
      }
      done += static_cast<size_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// An input with a pair to do: its index into the shard's inputs and, per method, whether the
// pair is pending.
struct Item {
  size_t input = 0;
  std::vector<bool> todo;
};

struct Decoded {
  Item item;         // the input and its pending methods
  at::Tensor rgb;    // [3, H, W] in [0, 1], resized
  std::string error;
};

struct Prediction {
  int64_t target = -1;
  std::string target_source;
  int64_t predicted = -1;
  double probability = 0;  // of the predicted class (classifiers; NaN for dense outputs)
  at::Tensor region;       // dense outputs: the target's region [h, w]
};

torch::Device device_of(Model& model) {
  for (const auto& p : model.module().parameters()) return p.device();
  for (const auto& b : model.module().buffers()) return b.device();
  return torch::kCPU;
}

// Removes temporary files ("<file>.tmp-<pid>") a killed run left under `out`: those of a
// process no longer alive whose file is one this shard writes (an output of a pending pair,
// run.json or a results file).
void remove_stray_temporaries(const fs::path& out, const std::set<std::string>& prefixes) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(out, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string path = it->path().generic_string();
    const auto at = path.rfind(".tmp-");
    if (at == std::string::npos) continue;
    const std::string pid_text = path.substr(at + 5);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    const long pid = std::strtol(pid_text.c_str(), nullptr, 10);
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
    const std::string file = path.substr(0, at);
    const std::string name = fs::path(file).filename().string();
    bool ours = name == "run.json" || is_results_file(fs::path(file));
    for (auto p = prefixes.begin(); !ours && p != prefixes.end(); ++p) {
      if (file.size() <= p->size() || file.compare(0, p->size(), *p) != 0) continue;
      ours = file[p->size()] == '_' || file[p->size()] == '.';
    }
    if (ours) fs::remove(it->path(), ec);
  }
}

}  // namespace

std::vector<Input> list_folder(const std::string& folder,
                               const std::vector<std::string>& class_names,
                               int64_t num_classes) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw usage_error("--images " + folder + ": no such folder (give a folder of images, or "
                      "--manifest for a list)");
  }
  const fs::path base(folder);
  std::vector<Input> inputs;
  for (auto it = fs::recursive_directory_iterator(
           base, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string leaf = it->path().filename().string();
    if (!leaf.empty() && leaf[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || !is_image_file(it->path())) continue;
    Input in;
    in.path = it->path().string();
    in.name = it->path().lexically_relative(base).generic_string();
    inputs.push_back(std::move(in));
  }
  if (ec) throw Error("--images " + folder + ": cannot list the folder (" + ec.message() + ")");
  if (inputs.empty()) {
    throw usage_error("--images " + folder + ": no image (PNG, JPEG, BMP, TIFF or WebP) in the "
                      "folder or below");
  }
  std::sort(inputs.begin(), inputs.end(),
            [](const Input& a, const Input& b) { return a.name < b.name; });
  // ImageFolder: the classes are the subfolders directly under `folder`.
  std::vector<std::string> folders;
  for (const auto& in : inputs) {
    const auto slash = in.name.find('/');
    if (slash == std::string::npos) continue;
    const std::string f = in.name.substr(0, slash);
    if (folders.empty() || folders.back() != f) folders.push_back(f);
  }
  folders.erase(std::unique(folders.begin(), folders.end()), folders.end());
  if (folders.empty()) return inputs;
  std::map<std::string, int64_t> classes;
  std::string unmatched;
  for (const auto& f : folders) {
    const int64_t c = class_of(f, class_names, num_classes);
    if (c >= 0) {
      classes[f] = c;
    } else if (unmatched.empty()) {
      unmatched = f;
    }
  }
  if (classes.empty()) {
    if (static_cast<int64_t>(folders.size()) != num_classes) return inputs;  // not class folders
    for (size_t i = 0; i < folders.size(); ++i) classes[folders[i]] = static_cast<int64_t>(i);
  } else if (!unmatched.empty()) {
    throw usage_error("--images " + folder + ": subfolder '" + unmatched +
                      "' names no class of the model, while others do (a class index or name; "
                      "give --labels with the class names, or a --manifest)");
  }
  for (auto& in : inputs) {
    const auto slash = in.name.find('/');
    if (slash == std::string::npos) continue;
    in.target = classes.at(in.name.substr(0, slash));
    in.target_source = "folder";
  }
  return inputs;
}

std::vector<Input> read_manifest(const std::string& csv,
                                 const std::vector<std::string>& class_names,
                                 int64_t num_classes) {
  std::error_code ec;
  if (!fs::exists(csv, ec)) throw usage_error("--manifest " + csv + ": no such file");
  std::string text;
  try {
    text = read_regular_file(csv, "manifest");
  } catch (const Error& e) {
    throw usage_error(std::string("--manifest ") + e.what());
  }
  const fs::path dir = fs::path(csv).parent_path();
  std::vector<Input> inputs;
  std::map<std::string, size_t> seen;  // name -> line
  size_t start = 0, line_no = 0;
  bool first = true;
  std::vector<std::string> fields;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto where = [&] { return "--manifest " + csv + " line " + std::to_string(line_no); };
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    if (!csv_fields(line, fields)) throw usage_error(where() + ": a quote is not closed");
    if (fields.size() > 2) {
      throw usage_error(where() + ": expected path[,target], got " +
                        std::to_string(fields.size()) + " fields");
    }
    const bool header = first && lower(fields[0]) == "path" &&
                        (fields.size() == 1 || lower(fields[1]) == "target");
    first = false;
    if (header) continue;
    if (fields[0].empty()) throw usage_error(where() + ": the path is empty");
    Input in;
    const fs::path written(fields[0]);
    in.path = written.is_absolute() ? written.string() : (dir / written).string();
    in.name = safe_name(fields[0]);
    if (fields.size() == 2 && !fields[1].empty()) {
      try {
        in.target = resolve_class(fields[1], class_names, num_classes);
      } catch (const Error& e) {
        throw usage_error(where() + ": target " + e.what());
      }
      in.target_source = "manifest";
    }
    const auto [it, fresh] = seen.emplace(in.name, line_no);
    if (!fresh) {
      throw usage_error(where() + ": " + fields[0] + " again (first on line " +
                        std::to_string(it->second) + "); list each image once");
    }
    inputs.push_back(std::move(in));
  }
  if (inputs.empty()) {
    throw usage_error("--manifest " + csv + ": no image listed (lines of path[,target])");
  }
  std::sort(inputs.begin(), inputs.end(),
            [](const Input& a, const Input& b) { return a.name < b.name; });
  return inputs;
}

Shard parse_shard(const std::string& text) {
  const auto number = [](const std::string& s, int64_t& out) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    out = std::stoll(s);
    return true;
  };
  Shard shard;
  if (text == "auto") {
    const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
    if (!id) return shard;  // not in a job array: the whole set
    const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
    const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
    int64_t task = 0, n = 0, first = 0;
    if (!number(id, task) || !count || !number(count, n) || n < 1 ||
        (min && !number(min, first))) {
      throw usage_error("--shard auto: SLURM_ARRAY_TASK_ID=" + std::string(id) +
                        ", SLURM_ARRAY_TASK_COUNT=" + (count ? count : "(unset)") +
                        ", SLURM_ARRAY_TASK_MIN=" + (min ? min : "(unset)") +
                        " are not a job array's task (whole numbers, a count >= 1); give "
                        "--shard K/N");
    }
    shard.index = task - first;
    shard.count = n;
    if (shard.index < 0 || shard.index >= n) {
      throw usage_error("--shard auto: task " + std::to_string(task) + " is not among the " +
                        std::to_string(n) + " tasks from " + std::to_string(first) +
                        " (an array of contiguous task ids, e.g. --array=0-15); give --shard K/N");
    }
    return shard;
  }
  const auto slash = text.find('/');
  if (slash == std::string::npos || !number(text.substr(0, slash), shard.index) ||
      !number(text.substr(slash + 1), shard.count) || shard.count < 1 ||
      shard.index >= shard.count) {
    throw usage_error("--shard " + text + ": expected K/N with 0 <= K < N (e.g. 3/16), or "
                      "auto under a Slurm job array");
  }
  return shard;
}

std::vector<Input> shard_inputs(std::vector<Input> inputs, const Shard& shard) {
  std::sort(inputs.begin(), inputs.end(),
            [](const Input& a, const Input& b) { return a.name < b.name; });
  if (shard.count <= 1) return inputs;
  std::vector<Input> out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (static_cast<int64_t>(i % static_cast<size_t>(shard.count)) == shard.index) {
      out.push_back(std::move(inputs[i]));
    }
  }
  return out;
}

std::string results_file_name(const Shard& shard) {
  if (shard.count <= 1) return "results.jsonl";
  return "results.shard-" + std::to_string(shard.index) + "-of-" + std::to_string(shard.count) +
         ".jsonl";
}

int64_t merge(const std::string& folder) {
  const auto files = results_files(folder);
  if (files.empty()) {
    throw usage_error("--merge " + folder + ": no results.jsonl or results.shard-*.jsonl in it");
  }
  std::map<std::pair<std::string, std::string>, json> rows;
  for (const auto& f : files) {
    for (auto& row : read_rows(f)) {
      const auto key = std::make_pair(row["image"].get<std::string>(),
                                      row["method"].get<std::string>());
      auto it = rows.find(key);
      const bool ok = row["status"] == "ok";
      if (it == rows.end() || ok || it->second["status"] != "ok") rows[key] = std::move(row);
    }
  }
  std::string text;
  for (const auto& [key, row] : rows) text += row.dump() + "\n";
  write_file_atomic((fs::path(folder) / "results.jsonl").string(), text);
  for (const auto& f : files) {
    if (f.filename() != "results.jsonl") fs::remove(f);
  }
  return static_cast<int64_t>(rows.size());
}

namespace {

// Messages between the ranks under MPI: a worker asks rank 0 for work (with its count of
// images done, for rank 0's progress line) and gets a chunk of (input, methods to run).
constexpr int kRequestTag = 7101;
constexpr int kChunkTag = 7102;

std::string items_message(const std::vector<Item>& items) {
  json list = json::array();
  for (const auto& item : items) {
    std::string bits;
    for (bool b : item.todo) bits += b ? '1' : '0';
    list.push_back({item.input, bits});
  }
  return list.dump();
}

std::vector<Item> items_of(const std::string& message, size_t inputs, size_t methods) {
  std::vector<Item> items;
  for (const auto& entry : json::parse(message)) {
    Item item;
    item.input = entry.at(0).get<size_t>();
    const std::string bits = entry.at(1).get<std::string>();
    if (item.input >= inputs || bits.size() != methods) {
      throw Error("batch: rank 0 sent work for another list of inputs or methods; give every "
                  "rank the same command line");
    }
    for (char c : bits) item.todo.push_back(c == '1');
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace

std::string rank_results_file_name(int rank, int ranks) {
  if (rank == 0) return "results.jsonl";
  return "results.rank-" + std::to_string(rank) + "-of-" + std::to_string(ranks) + ".jsonl";
}

Summary run(Model& model, const std::vector<Input>& all_inputs, const BatchOptions& o) {
  if (o.methods.empty()) throw usage_error("batch: no method to run");
  if (o.batch < 1) throw usage_error("--batch: expected >= 1");
  if (o.out.empty()) throw usage_error("--out: give an output folder");
  const fs::path out(o.out);
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
    throw usage_error("--out " + o.out + ": is a file; give a folder");
  }
  const bool dist = mpi::distributed();
  const int rank = mpi::rank(), ranks = mpi::size();
  if (dist && o.shard.count > 1) {
    throw usage_error("--shard: under mpirun the ranks share the work themselves; give --shard "
                      "(job arrays) or mpirun, not both");
  }
  // Everything that can be refused is checked before any work.
  std::vector<const MethodInfo*> infos;
  std::vector<std::unique_ptr<Method>> methods;
  std::vector<std::vector<View>> views;
  for (const auto& m : o.methods) {
    infos.push_back(&find_method(m.name));
    methods.push_back(infos.back()->make(m.params));
    views.push_back(method_views(*infos.back(), m.params));
  }
  const auto inputs = shard_inputs(all_inputs, o.shard);
  {
    std::map<std::string, std::string> stems;
    for (const auto& in : inputs) {
      const auto [it, fresh] = stems.emplace(stem_of(in), in.name);
      if (!fresh) {
        throw usage_error("inputs " + it->second + " and " + in.name +
                          " would write the same outputs (" + it->first +
                          "_...); rename one or list them under other names");
      }
    }
  }
  json config = json::object();
  if (!o.config.empty()) config = json::parse(o.config);
  const fs::path run_json = out / "run.json";

  Summary summary;
  summary.images = static_cast<int64_t>(inputs.size());
  summary.pairs = summary.images * static_cast<int64_t>(o.methods.size());
  std::vector<Item> pending;  // rank 0 (or the only process): the inputs with a pair to do
  fs::path own = out / (dist ? rank_results_file_name(rank, ranks) : results_file_name(o.shard));
  if (rank == 0) {
    fs::create_directories(out, ec);
    if (ec) throw Error("--out " + o.out + ": cannot create the folder (" + ec.message() + ")");
    if (fs::exists(run_json, ec)) {
      json stored;
      try {
        stored = json::parse(read_regular_file(run_json.string(), "run file")).at("config");
      } catch (const json::exception&) {
        throw Error(run_json.string() + ": not a run file of cnnvis batch; choose another --out");
      }
      const std::string key = first_difference(stored, config);
      if (!key.empty()) {
        throw usage_error(
            "--out " + o.out + ": holds a run with other options (" + key + ": " +
            (stored.contains(key) ? stored[key].dump() : "none") + ", now " +
            (config.contains(key) ? config[key].dump() : "none") +
            "); rerun with the same options to resume, or choose another --out");
      }
    } else {
      write_file_atomic(run_json.string(), json({{"config", config}}).dump(1) + "\n");
    }
    if (o.shard.count <= 1) {
      bool shards = false;
      for (const auto& f : results_files(out)) shards = shards || f.filename() != "results.jsonl";
      if (shards) merge(o.out);
    }
    // What is done: every file's ok rows. This process's own file keeps only its ok rows (its
    // error rows are tried again, a last line cut by a kill goes).
    std::set<std::pair<std::string, std::string>> done;
    for (const auto& f : results_files(out)) {
      size_t complete = 0;
      const auto rows = read_rows(f, &complete);
      std::string kept;
      bool dropped = false;
      for (const auto& row : rows) {
        if (row["status"] == "ok") {
          done.emplace(row["image"].get<std::string>(), row["method"].get<std::string>());
          kept += row.dump() + "\n";
        } else {
          dropped = true;
        }
      }
      if (f == own && (dropped || complete != fs::file_size(f))) {
        write_file_atomic(own.string(), kept);
      }
    }
    std::set<std::string> prefixes;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Item item;
      item.input = i;
      bool any = false;
      for (size_t m = 0; m < o.methods.size(); ++m) {
        const bool need = !done.count({inputs[i].name, infos[m]->name});
        item.todo.push_back(need);
        any = any || need;
        if (need) {
          prefixes.insert((out / (stem_of(inputs[i]) + "_" + infos[m]->name)).generic_string());
        } else {
          ++summary.skipped;
        }
      }
      if (any) pending.push_back(std::move(item));
    }
    remove_stray_temporaries(out, prefixes);
  }
  // Under MPI the other ranks wait for rank 0's preparation (a refusal there ends the job).
  mpi::barrier();
  if (dist && rank != 0 && !fs::exists(run_json, ec)) {
    throw Error("--out " + o.out + ": rank " + std::to_string(rank) + " does not see rank 0's " +
                run_json.string() + "; under mpirun --out must be a folder every rank shares "
                "(a shared file system)");
  }
  if (!dist && pending.empty()) return summary;

  // Where the work comes from: rank 0's list, in chunks of --batch images; under MPI the
  // other ranks ask rank 0 for each chunk, so that a rank with cheap images takes more.
  std::mutex source_mutex;
  size_t next = 0;
  const size_t chunk = static_cast<size_t>(o.batch);
  const auto take_local = [&](std::vector<Item>& items) {
    std::lock_guard<std::mutex> lock(source_mutex);
    items.clear();
    while (items.size() < chunk && next < pending.size()) items.push_back(pending[next++]);
    return !items.empty();
  };
  std::atomic<int64_t> own_done{0}, others_done{0};
  std::function<bool(std::vector<Item>&)> take = take_local;
  if (dist && rank != 0) {
    take = [&](std::vector<Item>& items) {
      mpi::send(0, kRequestTag, json({{"done", own_done.load()}}).dump());
      items = items_of(mpi::receive(0, kChunkTag), inputs.size(), o.methods.size());
      return !items.empty();
    };
  }
  std::thread server;  // rank 0 under MPI: answers the other ranks' requests
  if (dist && rank == 0) {
    server = std::thread([&] {
      try {
        std::vector<int64_t> reported(static_cast<size_t>(ranks), 0);
        std::vector<Item> items;
        for (int finished = 0; finished < ranks - 1;) {
          int from = 0;
          const json request = json::parse(mpi::receive(-1, kRequestTag, &from));
          reported[static_cast<size_t>(from)] = request.at("done").get<int64_t>();
          int64_t sum = 0;
          for (auto r : reported) sum += r;
          others_done = sum;
          if (!take_local(items)) ++finished;
          mpi::send(from, kChunkTag, items_message(items));
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "cnnvis: error: batch (rank 0, handing out work): %s\n", e.what());
        mpi::abort_on_error(1);
      }
    });
  }
  const int64_t images_total = static_cast<int64_t>(pending.size());
  int64_t attempted = 0;  // pairs this process tried
  const auto started = std::chrono::steady_clock::now();
  const auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  std::mutex summary_mutex;

  // The work of this process: decoding ahead, computing, writing behind.
  const auto compute = [&] {
    Appender appender(own.string());
    const torch::Device device = device_of(model);
    const auto names = model.class_names();
    const auto row_of = [&](const Input& in, const Prediction& p, size_t m) {
      json row = {{"image", in.name}, {"path", in.path}, {"method", infos[m]->name},
                  {"options", o.methods[m].params}};
      row["target"] = p.target >= 0 ? json(p.target) : json(nullptr);
      row["target_name"] = p.target >= 0 ? json(class_name(p.target, names)) : json(nullptr);
      row["target_source"] = p.target_source.empty() ? json(nullptr) : json(p.target_source);
      row["predicted"] = p.predicted >= 0 ? json(p.predicted) : json(nullptr);
      row["probability"] = std::isnan(p.probability) || p.predicted < 0 ? json(nullptr)
                                                                          : json(p.probability);
      row["rank"] = rank;  // the MPI rank that computed it (0 without mpirun)
      return row;
    };
    const auto fail = [&](json row, const std::string& error) {
      row["status"] = "error";
      row["error"] = error;
      row["files"] = json::array();
      row["ms"] = nullptr;
      appender.append(row.dump());
      std::lock_guard<std::mutex> lock(summary_mutex);
      summary.failures.push_back({row["image"], row["method"], error});
    };

    Channel<Decoded> decoded(static_cast<size_t>(std::max<int64_t>(4, 2 * o.batch)));
    Channel<std::function<void()>> writes(
        static_cast<size_t>(std::max<int64_t>(8, 4 * o.batch)));
    std::mutex writer_mutex;
    std::exception_ptr helper_error;  // guarded by writer_mutex
    const auto check_helpers = [&] {
      std::lock_guard<std::mutex> lock(writer_mutex);
      if (helper_error) std::rethrow_exception(helper_error);
    };
    // The helper threads' own ATen calls (resizing, rendering) run single-threaded: the cores
    // are the model's. (omp_set_num_threads sets this thread's teams only; at::set_num_threads
    // would change the process's defaults.)
    std::thread loader([&] {
      omp_set_num_threads(1);
      try {
        std::vector<Item> items;
        while (take(items)) {
          for (auto& item : items) {
            Decoded d;
            d.item = std::move(item);
            try {
              d.rgb = resize_image(load_image(inputs[d.item.input].path), o.preprocess);
            } catch (const std::exception& e) {
              d.error = e.what();
            }
            if (!decoded.push(std::move(d))) return;
          }
        }
      } catch (...) {  // asking rank 0 for work failed
        std::lock_guard<std::mutex> lock(writer_mutex);
        helper_error = std::current_exception();
      }
      decoded.close();
    });
    std::thread writer([&] {
      omp_set_num_threads(1);
      bool failed = false;
      while (auto job = writes.pop()) {
        if (failed) continue;  // drain after a fatal error
        try {
          (*job)();
        } catch (...) {
          failed = true;
          std::lock_guard<std::mutex> lock(writer_mutex);
          helper_error = std::current_exception();
          decoded.close();  // stops the loader; the main loop sees the error
        }
      }
    });
    struct Join {
      Channel<Decoded>& decoded;
      Channel<std::function<void()>>& writes;
      std::thread& loader;
      std::thread& writer;
      ~Join() {
        decoded.close();
        if (loader.joinable()) loader.join();
        writes.close();
        if (writer.joinable()) writer.join();
      }
    } join{decoded, writes, loader, writer};

    Progress progress;
    progress.images_total = images_total;
    const auto report = [&] {
      if (!o.progress || rank != 0) return;
      progress.images_done = own_done.load() + others_done.load();
      {
        std::lock_guard<std::mutex> lock(summary_mutex);
        progress.pairs_failed = static_cast<int64_t>(summary.failures.size());
      }
      progress.seconds = seconds();
      o.progress(progress);
    };
    // Writes one (image, method) result: views, raw, then its row.
    const auto write_result = [&](size_t input, size_t m, Attribution result, at::Tensor rgb,
                                  Prediction p, double ms) {
      return [&, input, m, result = std::move(result), rgb = std::move(rgb), p = std::move(p),
              ms] {
        const Input& in = inputs[input];
        json row = row_of(in, p, m);
        const std::string stem = stem_of(in) + "_" + infos[m]->name;
        const fs::path prefix = out / stem;
        json files = json::array();
        try {
          fs::create_directories(prefix.parent_path());
          if (o.png) {
            for (const auto& view : views[m]) {
              const std::string name = stem + "_" + view.name + ".png";
              save_png((out / name).string(), render_view(view, result, 0, rgb));
              files.push_back(name);
            }
          }
          if (o.raw) {
            save_npy((out / (stem + ".npy")).string(), result.raw);
            files.push_back(stem + ".npy");
            for (const auto& [extra, value] : result.extras) {
              const std::string name = stem + "_" + extra + ".npy";
              save_npy((out / name).string(), value);
              files.push_back(name);
            }
          }
        } catch (const Error& e) {
          fail(row, std::string("writing the outputs: ") + e.what());
          return;
        }
        row["status"] = "ok";
        row["error"] = nullptr;
        row["files"] = files;
        row["ms"] = ms;
        appender.append(row.dump());
      };
    };

    std::vector<Decoded> group;
    std::vector<bool> succeeded(o.methods.size(), false);
    bool ended = false;
    while (!ended) {
      group.clear();
      while (static_cast<int64_t>(group.size()) < o.batch) {
        auto d = decoded.pop();
        if (!d) {
          ended = true;
          break;
        }
        for (bool need : d->item.todo) attempted += need ? 1 : 0;
        if (!d->error.empty()) {
          const Input& in = inputs[d->item.input];
          Prediction none;
          none.target = in.target;
          none.target_source = in.target_source;
          for (size_t m = 0; m < o.methods.size(); ++m) {
            if (!d->item.todo[m]) continue;
            auto row = row_of(in, none, m);
            const std::string error = d->error;
            writes.push([&, row, error] { fail(row, error); });
          }
          ++own_done;
          continue;
        }
        group.push_back(std::move(*d));
      }
      check_helpers();
      if (group.empty()) continue;
      // Every image has the preprocessing's size (an exact --size, or --resize with --crop).
      const int64_t n = static_cast<int64_t>(group.size());
      std::vector<at::Tensor> rgbs;
      for (const auto& d : group) rgbs.push_back(d.rgb);
      const auto x = normalize(torch::stack(rgbs), o.preprocess).to(device);
      at::Tensor logits;
      {
        torch::InferenceMode guard;
        logits = model.forward(x).output.to(torch::kCPU, torch::kDouble);
      }
      std::vector<Prediction> predictions(static_cast<size_t>(n));
      std::vector<std::string> prediction_errors(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) {
        const Input& in = inputs[group[j].item.input];
        auto& p = predictions[j];
        p.target = in.target >= 0 ? in.target : o.target;
        p.target_source = in.target >= 0 ? in.target_source : o.target >= 0 ? "--target" : "top-1";
        if (logits.dim() == 2) {
          const auto probs = torch::softmax(logits[j], 0);
          p.predicted = probs.argmax().item<int64_t>();
          p.probability = probs[p.predicted].item<double>();
        } else if (logits.dim() == 4) {  // a segmentation model: the class at most pixels
          const auto counts = torch::bincount(logits[j].argmax(0).flatten(), {}, logits.size(1));
          p.predicted = counts.argmax().item<int64_t>();
          p.probability = std::nan("");
        } else {
          prediction_errors[j] = model.name() + " returns logits " + c10::str(logits.sizes()) +
                                 "; batch explains classifiers [N, C] and dense [N, C, H, W]";
          continue;
        }
        if (p.target < 0) p.target = p.predicted;
        if (p.target >= logits.size(1)) {
          prediction_errors[j] = "target class " + std::to_string(p.target) + " is not among " +
                                 model.name() + "'s " + std::to_string(logits.size(1)) +
                                 " classes";
        } else if (logits.dim() == 4) {
          p.region = predicted_region(logits.slice(0, j, j + 1), p.target).to(torch::kFloat);
          if (p.region.sum().item<double>() == 0) {
            prediction_errors[j] = "no pixel is predicted as class " + std::to_string(p.target) +
                                   " (" + class_name(p.target, names) + ")";
          }
        }
      }
      for (size_t m = 0; m < o.methods.size(); ++m) {
        // The images of this group that still need method m (and could be predicted).
        std::vector<int64_t> rows;
        for (int64_t j = 0; j < n; ++j) {
          if (!group[j].item.todo[m]) continue;
          if (!prediction_errors[j].empty()) {
            auto row = row_of(inputs[group[j].item.input], predictions[j], m);
            const std::string error = prediction_errors[j];
            writes.push([&, row, error] { fail(row, error); });
            continue;
          }
          rows.push_back(j);
        }
        if (rows.empty()) continue;
        // One call for the rows; when it fails, each image alone, so that one image's error
        // is that image's row only.
        const auto explain = [&](const std::vector<int64_t>& js) {
          std::vector<int64_t> classes;
          std::vector<at::Tensor> xs, regions;
          for (auto j : js) {
            classes.push_back(predictions[j].target);
            xs.push_back(x[j]);
            if (predictions[j].region.defined()) regions.push_back(predictions[j].region);
          }
          const auto xb = torch::stack(xs);
          const Target target =
              regions.empty() ? Target::class_logits(classes)
                              : Target::region_logits(classes, torch::stack(regions).to(device));
          std::unique_ptr<PrecisionGuard> guard;
          if (o.precision != Precision::kFloat32) {
            guard = std::make_unique<PrecisionGuard>(model, o.precision);
          }
          const auto t0 = std::chrono::steady_clock::now();
          Attribution a = methods[m]->explain(model, xb, target);
          a.raw = a.raw.detach().to(torch::kCPU);
          for (auto& [name, value] : a.extras) value = value.detach().to(torch::kCPU);
          const double ms =
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                  .count();
          return std::make_pair(std::move(a), ms / static_cast<double>(js.size()));
        };
        const auto hand_over = [&](const std::vector<int64_t>& js, const Attribution& a,
                                   double ms) {
          for (size_t r = 0; r < js.size(); ++r) {
            const int64_t j = js[r];
            Attribution one;
            one.raw = a.raw.slice(0, static_cast<int64_t>(r), static_cast<int64_t>(r) + 1);
            for (const auto& [name, value] : a.extras) {
              one.extras[name] =
                  value.dim() > 0 && value.size(0) == static_cast<int64_t>(js.size())
                      ? value.slice(0, static_cast<int64_t>(r), static_cast<int64_t>(r) + 1)
                      : value;
            }
            writes.push(write_result(group[j].item.input, m, std::move(one), group[j].rgb,
                                     predictions[j], ms));
          }
        };
        // A usage error before the method has ever succeeded is the options' (a layer the
        // model lacks, say), not an image's: it stops the run.
        const auto stops = [&](const std::exception& e) {
          const auto* error = dynamic_cast<const Error*>(&e);
          return !succeeded[m] && error && error->kind() == ErrorKind::kInvalidArgument;
        };
        try {
          auto [a, ms] = explain(rows);
          hand_over(rows, a, ms);
          succeeded[m] = true;
        } catch (const std::exception& e) {
          if (stops(e) && rows.size() == 1) throw;
          for (auto j : rows) {
            try {
              if (rows.size() == 1) throw;  // the error is this image's
              auto [a, ms] = explain({j});
              hand_over({j}, a, ms);
              succeeded[m] = true;
            } catch (const std::exception& one) {
              if (stops(one) && j == rows.back()) throw;
              auto row = row_of(inputs[group[j].item.input], predictions[j], m);
              const std::string error = one.what();
              writes.push([&, row, error] { fail(row, error); });
            }
          }
        }
        check_helpers();
      }
      own_done += n;
      report();
    }
    decoded.close();
    loader.join();
    writes.close();
    writer.join();
    check_helpers();
    if (!dist && own_done.load() == images_total) report();  // the last may have been unreadable
  };
  try {
    compute();
  } catch (...) {
    // Under MPI the caller's handler ends the job (mpi::abort_on_error); rank 0's server
    // thread is still waiting for requests then.
    if (server.joinable()) server.detach();
    throw;
  }
  if (server.joinable()) server.join();
  summary.computed = attempted - static_cast<int64_t>(summary.failures.size());
  if (!dist) return summary;

  // Rank 0 collects every rank's counts and failures, then merges the results files.
  json mine = {{"computed", summary.computed}, {"failures", json::array()}};
  for (const auto& f : summary.failures) mine["failures"].push_back({f.image, f.method, f.error});
  const auto all = mpi::gather(mine.dump());
  if (rank != 0) return summary;
  summary.computed = 0;
  summary.failures.clear();
  for (const auto& text : all) {
    const json part = json::parse(text);
    summary.computed += part.at("computed").get<int64_t>();
    for (const auto& f : part.at("failures")) {
      summary.failures.push_back({f.at(0), f.at(1), f.at(2)});
    }
  }
  std::sort(summary.failures.begin(), summary.failures.end(),
            [](const Failure& a, const Failure& b) {
              return std::tie(a.image, a.method) < std::tie(b.image, b.method);
            });
  merge(o.out);
  if (o.progress) {
    Progress progress;
    progress.images_total = progress.images_done = images_total;
    progress.pairs_failed = static_cast<int64_t>(summary.failures.size());
    progress.seconds = seconds();
    o.progress(progress);
  }
  return summary;
}

}  // namespace cnnvis::batch
