// The sampling heap profiler through V8's C++ API, for src/binding/sites.rs (issue #10).
//
// Why not the inspector: V8's inspector agent starts the profiler with kSamplingForceGC, so
// every HeapProfiler.getSamplingProfile is a full, non-incremental major GC on the JS thread
// (150-190 ms at ~100 MB of live heap, 1.4-1.9 s at ~1 GB). Started here with
// kSamplingNoFlags, a read only walks the sampled tree: no GC, well under a millisecond at
// 100 MB. The profiler is the same one per isolate the inspector drives, so coexistence is
// decided by V8 itself: StartSamplingHeapProfiler returns false when someone already runs it.
//
// The price: these are V8's C++ classes, whose layout is only stable within one Node major
// (one NODE_MODULE_VERSION). lib/allocations.js calls nothing here but the ABI probe unless
// the versions this file was compiled against equal the running process's; otherwise it
// falls back to the inspector. The probe itself touches no V8 symbol.
//
// Everything runs on the JS thread of the isolate that calls (main thread or a worker);
// g_started is per thread, so a worker's guard owns its own isolate's profiler.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <node_version.h>
#include <v8-profiler.h>
#include <v8-version.h>
#include <v8.h>

namespace {

thread_local bool g_started = false;

struct Utf8 {
  std::string buf;
  const char* take(v8::Isolate* isolate, v8::Local<v8::String> s, uint32_t* len) {
    if (s.IsEmpty()) {
      *len = 0;
      return "";
    }
    int n = s->Utf8Length(isolate);
    buf.resize(static_cast<size_t>(n));
    if (n > 0) {
      s->WriteUtf8(isolate, &buf[0], n, nullptr, v8::String::NO_NULL_TERMINATION);
    }
    *len = static_cast<uint32_t>(n);
    return buf.data();
  }
};

}  // namespace

extern "C" {

struct leakguard_sampler_abi_t {
  int32_t node_major;
  int32_t node_minor;
  int32_t v8_major;
  int32_t v8_minor;
  int32_t node_module_version;
};

// The versions of the headers this was compiled against. No V8 call.
void leakguard_sampler_abi(leakguard_sampler_abi_t* out) {
  out->node_major = NODE_MAJOR_VERSION;
  out->node_minor = NODE_MINOR_VERSION;
  out->v8_major = V8_MAJOR_VERSION;
  out->v8_minor = V8_MINOR_VERSION;
  out->node_module_version = NODE_MODULE_VERSION;
}

// 1: started (or already ours), 0: someone else runs the profiler, -1: no isolate here.
int32_t leakguard_sampler_start(uint64_t interval, int32_t depth) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return -1;
  if (g_started) return 1;
  bool ok = isolate->GetHeapProfiler()->StartSamplingHeapProfiler(
      interval, depth, v8::HeapProfiler::kSamplingNoFlags);
  if (!ok) return 0;
  g_started = true;
  return 1;
}

// Stops the profiler only when this thread started it. 1 stopped, 0 not ours.
int32_t leakguard_sampler_stop() {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr || !g_started) return 0;
  g_started = false;
  isolate->GetHeapProfiler()->StopSamplingHeapProfiler();
  return 1;
}

// One node of the tree, in pre-order: `parent` is the index (in this walk) of its parent,
// -1 for the root; line and column 1-based, 0 unknown; self_bytes = sum of size x count.
typedef void (*leakguard_node_cb)(void* ctx, uint32_t node_id, int32_t parent,
                                  int32_t script_id, int32_t line, int32_t column,
                                  const char* name, uint32_t name_len, const char* url,
                                  uint32_t url_len, double self_bytes);
// One live sample: its node, size x count, and V8's time-ordered sample id.
typedef void (*leakguard_sample_cb)(void* ctx, uint32_t node_id, double bytes,
                                    double sample_id);

// Walks the live profile. Returns the number of nodes, 0 when the profiler is not running
// (nobody's: after someone else stopped it), -1 with no isolate.
int64_t leakguard_sampler_read(void* ctx, leakguard_node_cb on_node,
                               leakguard_sample_cb on_sample) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return -1;
  v8::HandleScope scope(isolate);
  v8::AllocationProfile* profile = isolate->GetHeapProfiler()->GetAllocationProfile();
  if (profile == nullptr) {
    g_started = false;
    return 0;
  }
  Utf8 name_buf;
  Utf8 url_buf;
  int64_t count = 0;
  std::vector<std::pair<v8::AllocationProfile::Node*, int32_t>> stack;
  stack.emplace_back(profile->GetRootNode(), -1);
  while (!stack.empty()) {
    v8::AllocationProfile::Node* node = stack.back().first;
    int32_t parent = stack.back().second;
    stack.pop_back();
    double self_bytes = 0;
    for (const auto& a : node->allocations) {
      self_bytes += static_cast<double>(a.size) * static_cast<double>(a.count);
    }
    uint32_t name_len = 0;
    uint32_t url_len = 0;
    const char* name = name_buf.take(isolate, node->name, &name_len);
    const char* url = url_buf.take(isolate, node->script_name, &url_len);
    int32_t line = node->line_number > 0 ? node->line_number : 0;
    int32_t column = node->column_number > 0 ? node->column_number : 0;
    int32_t index = static_cast<int32_t>(count++);
    on_node(ctx, node->node_id, parent, node->script_id, line, column, name, name_len, url,
            url_len, self_bytes);
    // Children pushed in reverse so they are visited in V8's order, as the inspector
    // reports them.
    for (auto it = node->children.rbegin(); it != node->children.rend(); ++it) {
      stack.emplace_back(*it, index);
    }
  }
  for (const auto& s : profile->GetSamples()) {
    on_sample(ctx, s.node_id, static_cast<double>(s.size) * static_cast<double>(s.count),
              static_cast<double>(s.sample_id));
  }
  delete profile;
  return count;
}

}  // extern "C"
