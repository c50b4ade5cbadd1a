#include "gallery.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include "cnnvis/error.hpp"
#include "cnnvis/io/file.hpp"

namespace cnnvis::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot read");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON (" + e.what() +
                "); delete the gallery folder and run `cnnvis demo` again");
  }
}

const char* kStyle = R"(<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
p.meta, span.time, td.desc { color: #666; font-size: 0.85em; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; }
th, td { padding: 4px; text-align: center; vertical-align: middle; }
th { font-weight: normal; font-size: 0.85em; }
td.label { text-align: right; font-size: 0.9em; max-width: 240px; padding-right: 10px; }
tr.first td { border-top: 1px solid #ccc; }
img.thumb { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; }
img.full { width: 288px; height: 288px; object-fit: contain; image-rendering: pixelated; }
table.metrics td, table.metrics th { border: 1px solid #ccc; padding: 4px 10px; }
table.metrics td.name { text-align: left; }
tr.baseline td { color: #777; font-style: italic; }
div.plots { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; }
figcaption { font-size: 0.85em; color: #444; max-width: 600px; }
svg.curve text { font-size: 10px; fill: #444; }
</style>)";

std::string page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
         html_escape(title) + "</title>\n" + kStyle + "\n</head>\n<body>\n" + body +
         "</body>\n</html>\n";
}

std::string fixed(double value, int digits) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(digits);
  out << value;
  return out.str();
}

bool has_synthesis(const json& gallery) {
  return gallery.contains("synthesis") && !gallery["synthesis"].empty();
}

// Links to the gallery's other pages; on an image page (`index` >= 0) also to the previous and
// next image.
std::string nav(const json& gallery, bool evaluation, int64_t index = -1) {
  std::string out = "<nav>";
  if (!gallery.is_null()) {
    out += "<a href=\"index.html\">all images</a>";
    const auto& images = gallery["images"];
    const int64_t n = static_cast<int64_t>(images.size());
    if (index >= 0 && n > 1) {
      const auto& prev = images[static_cast<size_t>((index + n - 1) % n)];
      const auto& next = images[static_cast<size_t>((index + 1) % n)];
      out += "<a href=\"image_" + html_escape(prev["stem"].get<std::string>()) +
             ".html\">&larr; " + html_escape(prev["stem"].get<std::string>()) + "</a>";
      out += "<a href=\"image_" + html_escape(next["stem"].get<std::string>()) + ".html\">" +
             html_escape(next["stem"].get<std::string>()) + " &rarr;</a>";
    }
  }
  if (!gallery.is_null() && has_synthesis(gallery)) {
    out += "<a href=\"synthesis.html\">synthesis</a>";
  }
  if (evaluation) out += "<a href=\"evaluation.html\">evaluation</a>";
  return out + "</nav>\n";
}

std::string meta(const json& gallery) {
  std::string out = "<p class=\"meta\">model " + html_escape(gallery["model"].get<std::string>());
  if (!gallery["weights"].get<std::string>().empty()) {
    out += " (" + html_escape(gallery["weights"].get<std::string>()) + ")";
  }
  out += ", input " + std::to_string(gallery["size"].get<int64_t>()) + " px, " +
         html_escape(gallery["device"].get<std::string>()) + ", " +
         std::to_string(gallery["threads"].get<int64_t>()) +
         " threads; times are per image, as the method ran here. Written by <code>" +
         html_escape(gallery["command"].get<std::string>()) + "</code>.</p>\n";
  return out;
}

// "1234 output pixels (56.7%)": the size of a segmentation model's region (demo's "region").
std::string region_pixels(const json& region) {
  return std::to_string(region["pixels"].get<int64_t>()) + " output pixels (" +
         fixed(100.0 * region["share"].get<double>(), 1) + "%)";
}

std::string image_header(const json& image) {
  std::string out = "<a href=\"image_" + html_escape(image["stem"].get<std::string>()) +
                    ".html\"><img class=\"thumb\" src=\"" +
                    html_escape(image["file"].get<std::string>()) + "\" alt=\"" +
                    html_escape(image["stem"].get<std::string>()) + "\"></a><br>" +
                    html_escape(image["target_name"].get<std::string>()) + " (" +
                    fixed(image["probability"].get<double>(), 2) + ")";
  // A segmentation model's region (the pixels predicted as the class), on the input.
  if (image.contains("region")) {
    const auto& region = image["region"];
    out += "<br><img class=\"thumb\" src=\"" + html_escape(region["file"].get<std::string>()) +
           "\" alt=\"region\"><br><span class=\"time\">over " + region_pixels(region) +
           "</span>";
  }
  return out;
}

// The synthesis rows (heading and table), or nothing when the gallery has none.
std::string synthesis_section(const json& gallery) {
  if (!has_synthesis(gallery)) return "";
  std::string body;
  body += "<h2 id=\"synthesis\">Synthesis</h2>\n<p class=\"meta\">Images made by optimizing "
          "the input (<code>cnnvis synthesize</code>); captions give the objective before and "
          "after, or the reconstruction's class.</p>\n<table class=\"synthesis\">\n";
  for (const auto& section : gallery["synthesis"]) {
    body += "<tr class=\"first\" data-synthesis=\"" +
            html_escape(section["name"].get<std::string>()) + "\"><td class=\"label\" title=\"" +
            html_escape(section["description"].get<std::string>()) + "\"><b>" +
            html_escape(section["title"].get<std::string>()) + "</b><br><span class=\"time\">" +
            html_escape(section["description"].get<std::string>()) + "; " +
            fixed(section["seconds"].get<double>(), 1) + " s</span></td>";
    for (const auto& item : section["items"]) {
      body += "<td><img class=\"thumb\" src=\"" + html_escape(item["file"].get<std::string>()) +
              "\" alt=\"" + html_escape(item["caption"].get<std::string>()) +
              "\"><br><span class=\"time\">" + html_escape(item["caption"].get<std::string>()) +
              "</span></td>";
    }
    body += "</tr>\n";
  }
  body += "</table>\n";
  return body;
}

void write_index(const fs::path& folder, const json& gallery, bool evaluation) {
  std::string body = "<h1>cnnvis gallery</h1>\n" + meta(gallery) + nav(gallery, evaluation);
  body += "<table class=\"gallery\">\n<tr><th></th>";
  for (const auto& image : gallery["images"]) body += "<th>" + image_header(image) + "</th>";
  body += "</tr>\n";
  for (const auto& method : gallery["methods"]) {
    const std::string name = method["name"];
    bool first = true;
    for (const auto& view : method["views"]) {
      const std::string view_name = view["name"];
      body += std::string("<tr") + (first ? " class=\"first\" id=\"method-" + html_escape(name) + "\"" : "") +
              " data-method=\"" +
              html_escape(name) + "\" data-view=\"" + html_escape(view_name) + "\">";
      body += "<td class=\"label\" title=\"" + html_escape(view["description"]) + "\"><b>" +
              html_escape(method["title"].get<std::string>()) + "</b>: " +
              html_escape(view["title"].get<std::string>());
      if (first) {
        body += "<br><span class=\"time\">" + fixed(method["ms_per_image"].get<double>(), 1) +
                " ms per image</span>";
      }
      body += "</td>";
      for (const auto& image : gallery["images"]) {
        const auto src = gallery_picture(image["stem"], name, view_name);
        body += "<td><img class=\"thumb\" src=\"" + html_escape(src) + "\" alt=\"" +
                html_escape(name + " " + view_name) + "\"></td>";
      }
      body += "</tr>\n";
      first = false;
    }
  }
  body += "</table>\n";
  body += synthesis_section(gallery);
  write_file_atomic((folder / "index.html").string(), page("cnnvis gallery", body));
}

void write_image_page(const fs::path& folder, const json& gallery, size_t index,
                      bool evaluation) {
  const json& image = gallery["images"][index];
  const std::string stem = image["stem"];
  std::string body = "<h1>" + html_escape(stem) + "</h1>\n" + meta(gallery) +
                     nav(gallery, evaluation, static_cast<int64_t>(index));
  body += "<p><img class=\"full\" src=\"" + html_escape(image["file"].get<std::string>()) +
          "\" alt=\"input\"><br>input " + html_escape(image["source"].get<std::string>()) +
          "; explained class: " + std::to_string(image["target"].get<int64_t>()) + " " +
          html_escape(image["target_name"].get<std::string>()) + " (probability " +
          fixed(image["probability"].get<double>(), 3) + ")</p>\n";
  if (image.contains("region")) {
    const auto& region = image["region"];
    body += "<p><img class=\"full\" src=\"" + html_escape(region["file"].get<std::string>()) +
            "\" alt=\"region\"><br>the region explained: the class's logits summed over the " +
            region_pixels(region) + " predicted as it; the probability is its mean there</p>\n";
  }
  body += "<table class=\"image\">\n";
  for (const auto& method : gallery["methods"]) {
    const std::string name = method["name"];
    body += "<tr class=\"first\" data-method=\"" + html_escape(name) + "\"><td class=\"label\"><b>" +
            html_escape(method["title"].get<std::string>()) + "</b><br><span class=\"time\">" +
            fixed(method["ms_per_image"].get<double>(), 1) + " ms per image<br>" +
            html_escape(method["paper"].get<std::string>()) + "</span></td>";
    for (const auto& view : method["views"]) {
      body += "<td><img class=\"full\" src=\"" +
              html_escape(gallery_picture(stem, name, view["name"])) + "\" alt=\"" +
              html_escape(name) + "\"><br><span class=\"time\">" +
              html_escape(view["description"].get<std::string>()) + "</span></td>";
    }
    body += "</tr>\n";
  }
  body += "</table>\n";
  write_file_atomic((folder / ("image_" + stem + ".html")).string(), page(stem, body));
}

// One plot of a curve per method: score (0..1) against the fraction of pixels changed, as an
// inline SVG with a legend; baselines dashed grey.
std::string curve_plot(const json& e, const std::string& key, const std::string& title,
                       const std::string& caption) {
  static const char* kColours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
                                   "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
                                   "#e6550d", "#31a354", "#756bb1"};
  const double left = 38, top = 10, bottom = 30, pw = 332, ph = 210;
  const double legend_x = left + pw + 28, line = 13;  // the legend, right of the plot
  double w = legend_x + 250, h = top + ph + bottom;
  const bool road = key.rfind("road", 0) == 0;
  std::string svg;
  int drawn = 0;
  size_t colour = 0;
  int baselines = 0;
  std::string legend;
  for (const auto& r : e["results"]) {
    if (!r.contains("curves") || !r["curves"].contains(key) || r["curves"][key].empty()) continue;
    const auto& ys = r["curves"][key];
    const size_t k = ys.size();
    const bool baseline = r["baseline"].get<bool>();
    const std::string stroke = baseline ? (baselines++ == 0 ? "#777" : "#aaa")
                                        : kColours[colour++ % std::size(kColours)];
    const std::string dash = !baseline ? ""
                             : std::string(" stroke-dasharray=\"") +
                                   (baselines == 1 ? "5 3" : "1.5 2.5") + "\"";
    std::string points;
    for (size_t i = 0; i < k; ++i) {
      const double x = road ? e["road_fractions"][i].get<double>()
                            : (k > 1 ? static_cast<double>(i) / static_cast<double>(k - 1) : 0.0);
      const double y = std::clamp(ys[i].get<double>(), 0.0, 1.0);
      points += fixed(left + x * pw, 1) + "," + fixed(top + (1 - y) * ph, 1) + " ";
    }
    svg += "<polyline fill=\"none\" stroke=\"" + stroke + "\" stroke-width=\"1.5\"" + dash +
           " points=\"" + points + "\"><title>" +
           html_escape(r["title"].get<std::string>()) + "</title></polyline>\n";
    const double ly = top + 8 + drawn * line;
    legend += "<line x1=\"" + fixed(legend_x, 1) + "\" y1=\"" + fixed(ly - 3, 1) + "\" x2=\"" +
              fixed(legend_x + 16, 1) + "\" y2=\"" + fixed(ly - 3, 1) + "\" stroke=\"" + stroke +
              "\" stroke-width=\"2\"" + dash +
              "/><text x=\"" + fixed(legend_x + 20, 1) + "\" y=\"" + fixed(ly, 1) + "\">" +
              html_escape(r["title"].get<std::string>()) + "</text>\n";
    ++drawn;
  }
  if (drawn == 0) return "";
  h = std::max(h, top + 8 + drawn * line + 4);
  std::string axes = "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<rect x=\"" + fixed(left, 0) + "\" y=\"" + fixed(top, 0) + "\" width=\"" +
                     fixed(pw, 0) + "\" height=\"" + fixed(ph, 0) +
                     "\" fill=\"none\" stroke=\"#999\"/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double v = t / 4.0;
    axes += "<text x=\"" + fixed(left - 4, 1) + "\" y=\"" + fixed(top + (1 - v) * ph + 3, 1) +
            "\" text-anchor=\"end\">" + fixed(v, 2) + "</text>\n";
    axes += "<text x=\"" + fixed(left + v * pw, 1) + "\" y=\"" + fixed(h - bottom + 12, 1) +
            "\" text-anchor=\"middle\">" + fixed(v, 2) + "</text>\n";
  }
  axes += "<text x=\"" + fixed(left + pw / 2, 1) + "\" y=\"" + fixed(h - 4, 1) +
          "\" text-anchor=\"middle\">fraction of pixels " + (road || key == "deletion" ? "removed" : "inserted") +
          "</text>\n";
  return "<figure><svg class=\"curve\" role=\"img\" aria-label=\"" + html_escape(title) +
         "\" width=\"" + fixed(w, 0) + "\" height=\"" + fixed(h, 0) + "\" viewBox=\"0 0 " +
         fixed(w, 0) + " " + fixed(h, 0) + "\" xmlns=\"http://www.w3.org/2000/svg\">\n" + axes +
         svg + legend +
         "</svg><figcaption><b>" + html_escape(title) + "</b>: " + html_escape(caption) +
         "</figcaption></figure>\n";
}

std::string evaluation_page_name(const std::string& method) {
  return "evaluation_" + method + ".html";
}

// A method's page: its maps of the first images over them, with each image's numbers.
void write_method_evaluation_page(const fs::path& folder, const json& gallery, const json& e,
                                  const json& r) {
  std::string body = "<h1>" + html_escape(r["title"].get<std::string>()) + "</h1>\n" +
                     "<p class=\"meta\">" + html_escape(e["set"].get<std::string>()) +
                     "; the map over each image (jet, min-max) and the image's numbers. " +
                     "<a href=\"evaluation.html\">back to the evaluation</a></p>\n" +
                     nav(gallery, true);
  std::vector<std::string> keys;
  for (const auto& one : r["per_image"]) {
    for (const auto& [k, v] : one.items()) {
      if (k != "name" && k != "picture" && std::find(keys.begin(), keys.end(), k) == keys.end()) {
        keys.push_back(k);
      }
    }
  }
  body += "<table class=\"metrics\">\n<tr><th>image</th><th>map</th>";
  for (const auto& k : keys) body += "<th>" + html_escape(k) + "</th>";
  body += "</tr>\n";
  for (const auto& one : r["per_image"]) {
    if (!one.contains("picture")) continue;
    body += "<tr><td class=\"name\">" + html_escape(one["name"].get<std::string>()) +
            "</td><td><img class=\"thumb\" src=\"" +
            html_escape(one["picture"].get<std::string>()) + "\" alt=\"map\"></td>";
    for (const auto& k : keys) {
      std::string v;
      if (one.contains(k)) {
        const auto& x = one[k];
        v = x.is_boolean() ? (x.get<bool>() ? "yes" : "no")
            : x.is_number_float() ? fixed(x.get<double>(), 3)
                                  : x.dump();
      }
      body += "<td>" + html_escape(v) + "</td>";
    }
    body += "</tr>\n";
  }
  body += "</table>\n";
  write_file_atomic((folder / evaluation_page_name(r["method"].get<std::string>())).string(),
                    page(r["title"].get<std::string>(), body));
}

void write_evaluation_page(const fs::path& folder, const json& gallery, const json& e) {
  for (const auto& r : e["results"]) {
    if (!r["per_image"].empty() && r["per_image"][0].contains("picture")) {
      write_method_evaluation_page(folder, gallery, e, r);
    }
  }
  std::string body = "<h1>cnnvis evaluation</h1>\n<p class=\"meta\">model " +
                     html_escape(e["model"].get<std::string>()) + ", " +
                     html_escape(e["set"].get<std::string>()) + ", pointing-game margin " +
                     fixed(e["margin"].get<double>(), 1) + " px, " +
                     std::to_string(e["steps"].get<int64_t>()) +
                     " deletion/insertion steps. Written by <code>" +
                     html_escape(e["command"].get<std::string>()) + "</code>.</p>\n" +
                     nav(gallery, true);
  // The table as the CLI printed it: its columns and each row's cells.
  body += "<table class=\"metrics\">\n<tr><th>method</th>";
  for (const auto& title : e["columns"]) body += "<th>" + html_escape(title.get<std::string>()) + "</th>";
  body += "</tr>\n";
  // A method's row links to its pictures in the gallery (when `cnnvis demo` made them).
  std::set<std::string> pictured;
  if (gallery.contains("methods")) {
    for (const auto& m : gallery["methods"]) pictured.insert(m["name"].get<std::string>());
  }
  for (const auto& r : e["results"]) {
    const bool baseline = r["baseline"].get<bool>();
    const std::string method = r["method"].get<std::string>();
    std::string title = html_escape(r["title"].get<std::string>());
    const bool has_pictures = !r["per_image"].empty() && r["per_image"][0].contains("picture");
    if (has_pictures) {
      title = "<a href=\"" + html_escape(evaluation_page_name(method)) + "\">" + title + "</a>";
    }
    if (pictured.count(method)) {
      title += " <a class=\"meta\" href=\"index.html#method-" + html_escape(method) +
               "\">(gallery)</a>";
    }
    body += std::string("<tr") + (baseline ? " class=\"baseline\"" : "") + " data-method=\"" +
            html_escape(method) + "\"><td class=\"name\">" + title + "</td>";
    for (const auto& c : r["cells"]) body += "<td>" + html_escape(c.get<std::string>()) + "</td>";
    body += "</tr>\n";
  }
  body += "</table>\n<p class=\"meta\">" + html_escape(e["legend"].get<std::string>()) + "</p>\n";
  // The curves behind the AUCs, every method in one plot per metric.
  const std::string plots =
      curve_plot(e, "deletion", "Deletion",
                 "target probability as the map's most important pixels are set to the mean "
                 "colour (low is good)") +
      curve_plot(e, "insertion", "Insertion",
                 "target probability as the map's most important pixels return into a blurred "
                 "copy (high is good)") +
      curve_plot(e, "road_morf", "ROAD, most relevant first",
                 "target probability after imputing the most important pixels (low is good)") +
      curve_plot(e, "road_lerf", "ROAD, least relevant first",
                 "target probability after imputing the least important pixels (high is good)");
  if (!plots.empty()) body += "<h2>Curves</h2>\n<div class=\"plots\">\n" + plots + "</div>\n";
  // The cascading randomization curves: one column per randomized layer group.
  const json* first = nullptr;
  for (const auto& r : e["results"]) {
    if (!r["cascade"].empty()) {
      first = &r;
      break;
    }
  }
  if (first != nullptr) {
    body += "<h2>Cascading randomization</h2>\n<p class=\"meta\">Mean Spearman rank "
            "correlation between the trained model's map and the map after re-initializing "
            "the layers from the top down to the named one (Adebayo et al. 2018).</p>\n"
            "<table class=\"metrics\">\n<tr><th>method</th>";
    for (const auto& step : (*first)["cascade"]) {
      body += "<th>" + html_escape(step["layer"].get<std::string>()) + "</th>";
    }
    body += "</tr>\n";
    for (const auto& r : e["results"]) {
      if (r["cascade"].empty()) continue;
      body += "<tr><td class=\"name\">" + html_escape(r["title"].get<std::string>()) + "</td>";
      for (const auto& step : r["cascade"]) {
        body += "<td>" + fixed(step["correlation"].get<double>(), 2) + "</td>";
      }
      body += "</tr>\n";
    }
    body += "</table>\n";
  }
  write_file_atomic((folder / "evaluation.html").string(), page("cnnvis evaluation", body));
}

}  // namespace

std::string gallery_picture(const std::string& stem, const std::string& method,
                            const std::string& view) {
  return "images/" + stem + "_" + method + "_" + view + ".png";
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

void write_gallery_pages(const std::string& folder_name) {
  const fs::path folder(folder_name);
  const bool has_gallery = fs::exists(folder / "gallery.json");
  const bool has_evaluation = fs::exists(folder / "evaluation.json");
  json gallery;  // null without gallery.json
  if (has_gallery) {
    gallery = read_json(folder / "gallery.json");
    write_index(folder, gallery, has_evaluation);
    for (size_t i = 0; i < gallery["images"].size(); ++i) {
      write_image_page(folder, gallery, i, has_evaluation);
    }
    if (has_synthesis(gallery)) {
      write_file_atomic((folder / "synthesis.html").string(),
                        page("cnnvis synthesis", "<h1>cnnvis synthesis</h1>\n" + meta(gallery) +
                                                     nav(gallery, has_evaluation) +
                                                     synthesis_section(gallery)));
    }
  }
  if (has_evaluation) {
    write_evaluation_page(folder, gallery, read_json(folder / "evaluation.json"));
  }
}

}  // namespace cnnvis::cli
