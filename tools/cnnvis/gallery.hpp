#pragma once
// The HTML gallery written by `cnnvis demo` and extended by `cnnvis evaluate`. Each command
// writes its data as JSON into the gallery folder (gallery.json, evaluation.json) and the pages
// are rendered from those files alone, so either command can run first and the index links
// whatever exists.
//
// Folder layout:
//   index.html         rows: method and view, columns: images (like the classic collection);
//                      then the synthesis rows (filters, class images, inversions, dreams)
//   image_<stem>.html  one page per image: every view at full size with its description
//   synthesis.html     the synthesis rows alone (when demo ran the synthesis)
//   evaluation.html    the `cnnvis evaluate` table (when evaluate has run)
//   images/            <stem>.png (the input as the model saw it), <stem>_<method>_<view>.png
//   synthesis/         the synthesized images shown on the index
//   gallery.json, evaluation.json
#include <nlohmann/json.hpp>

#include <string>

namespace cnnvis::cli {

// Path of the picture of (image stem, method, view), relative to the gallery folder.
std::string gallery_picture(const std::string& stem, const std::string& method,
                            const std::string& view);

// Writes index.html and the image pages from `folder`/gallery.json; links evaluation.html when
// `folder`/evaluation.json exists (and writes that page too). Does nothing when there is no
// gallery.json and no evaluation.json. Files are written atomically.
void write_gallery_pages(const std::string& folder);

// Escapes &, <, >, " and ' for HTML text and attributes.
std::string html_escape(const std::string& text);

}  // namespace cnnvis::cli
