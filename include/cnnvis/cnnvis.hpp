#pragma once
// Umbrella header: everything a user of cnnvis needs.
#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/io/file.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/vanilla.hpp"
#include "cnnvis/model.hpp"
#include "cnnvis/models/weights.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/target.hpp"
