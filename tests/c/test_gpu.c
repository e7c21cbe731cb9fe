/* GPUs from C: the CUDA devices report (devices, or why there are none, never a crash), the
 * default model loaded with gpu_layers -1 (auto) and 0 (CPU only) generating the same greedy
 * text, bad GPU parameters refused with WOOLLY_ERR_INVALID_ARGUMENT, and on_device_oom echoed
 * in the model's info. */
#include <woolly.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* The devices report, allocated (the caller frees it); NULL on failure. */
static char *devices_json(void) {
    size_t len = 0;
    woolly_status st = woolly_cuda_devices_json(NULL, 0, &len);
    CHECK(st == WOOLLY_ERR_BUFFER_TOO_SMALL && len > 0, "size query: %s", woolly_status_name(st));
    size_t cap = len + 4096; /* free memory is read anew on each call */
    char *buf = malloc(cap);
    if (!buf) return NULL;
    st = woolly_cuda_devices_json(buf, cap, &len);
    CHECK(st == WOOLLY_OK && strlen(buf) == len, "devices json: %s", woolly_status_name(st));
    if (st != WOOLLY_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void check_devices_report(void) {
    char *j = devices_json();
    if (!j) return;
    CHECK(j[0] == '{' && j[strlen(j) - 1] == '}', "not an object: %s", j);
    CHECK(strstr(j, "\"available\":") && strstr(j, "\"reason\":") && strstr(j, "\"devices\":["),
          "keys: %s", j);
    if (strstr(j, "\"available\":true")) {
        /* A GPU machine: each device has its figures, the capability as "major.minor". */
        CHECK(strstr(j, "\"reason\":null"), "a reason with devices: %s", j);
        CHECK(strstr(j, "\"name\":\"") && strstr(j, "\"total_bytes\":") && strstr(j, "\"free_bytes\":")
                  && strstr(j, "\"compute_capability\":\"") && strstr(j, "\"sm_count\":")
                  && strstr(j, "\"max_threads_per_block\":") && strstr(j, "\"warp_size\":32"),
              "device figures: %s", j);
        printf("CUDA devices: %s\n", j);
    } else {
        /* No device: the reason in words and an empty list. */
        CHECK(strstr(j, "\"available\":false") && strstr(j, "\"devices\":[]"), "absent: %s", j);
        CHECK(strstr(j, "\"reason\":\"no CUDA driver (libcuda not found)\"")
                  || strstr(j, "\"reason\":\"no CUDA device\"")
                  || strstr(j, "\"reason\":\"built without CUDA\"")
                  || strstr(j, "\"reason\":\"CUDA driver error"),
              "reason: %s", j);
        printf("no CUDA device: %s\n", j);
    }
    /* Too small a buffer: the length only. */
    char small[4];
    size_t len = 0;
    CHECK(woolly_cuda_devices_json(small, sizeof small, &len) == WOOLLY_ERR_BUFFER_TOO_SMALL && len > 4,
          "small buffer");
    CHECK(woolly_cuda_devices_json(NULL, 0, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "NULL len");
    free(j);
}

typedef struct {
    char *out;
    size_t cap, len;
} sink;

static bool collect(const char *piece, size_t len, int32_t id, void *user_data) {
    (void)id;
    sink *s = user_data;
    if (s->len + len < s->cap) {
        memcpy(s->out + s->len, piece, len);
        s->len += len;
        s->out[s->len] = 0;
    }
    return true;
}

/* Greedy text of `n` tokens from the model loaded with `gpu_layers`, into `out`. */
static int greedy_text(int32_t gpu_layers, char *out, size_t cap) {
    woolly_model_params mp = woolly_model_default_params();
    mp.gpu_layers = gpu_layers;
    woolly_model *model = NULL;
    woolly_status st = woolly_model_load(NULL, mp, &model);
    CHECK(st == WOOLLY_OK && model, "load with gpu_layers %d: %s", gpu_layers, woolly_status_name(st));
    if (st != WOOLLY_OK) return 0;
    woolly_generate_params gp = woolly_generate_default_params();
    gp.max_tokens = 8;
    gp.temperature = 0;
    gp.ignore_eos = true;
    sink s = {out, cap, 0};
    st = woolly_generate(model, "The capital of France is", gp, collect, &s);
    CHECK(st == WOOLLY_OK && s.len > 0, "generate with gpu_layers %d: %s", gpu_layers, woolly_status_name(st));
    woolly_model_free(model);
    return st == WOOLLY_OK;
}

static void check_bad_params(void) {
    struct {
        const char *what;
        woolly_model_params p;
    } bad[5];
    for (int i = 0; i < 5; i++) bad[i].p = woolly_model_default_params();
    bad[0].what = "gpu_layers -2";
    bad[0].p.gpu_layers = -2;
    bad[1].what = "gpu_layers INT32_MIN";
    bad[1].p.gpu_layers = INT32_MIN;
    bad[2].what = "main_gpu -2";
    bad[2].p.main_gpu = -2;
    bad[3].what = "split_mode 7";
    bad[3].p.split_mode = (woolly_split_mode)7;
    bad[4].what = "on_device_oom 2";
    bad[4].p.on_device_oom = (woolly_device_oom)2;
    static const char *const named[5] = {"gpu_layers", "gpu_layers", "main_gpu", "split_mode", "on_device_oom"};
    for (int i = 0; i < 5; i++) {
        woolly_model *model = (woolly_model *)&bad; /* must be set to NULL */
        woolly_status st = woolly_model_load(NULL, bad[i].p, &model);
        CHECK(st == WOOLLY_ERR_INVALID_ARGUMENT && model == NULL, "%s: %s", bad[i].what, woolly_status_name(st));
        CHECK(strstr(woolly_last_error(), named[i]), "%s: the message names the parameter: %s", bad[i].what,
              woolly_last_error());
    }
}

int main(void) {
    CHECK(woolly_abi_version() == WOOLLY_ABI_VERSION && WOOLLY_ABI_VERSION >= 4, "abi %u", woolly_abi_version());
    woolly_model_params d = woolly_model_default_params();
    CHECK(d.gpu_layers == -1 && d.main_gpu == -1 && d.split_mode == WOOLLY_SPLIT_LAYER && d.gpu_margin_bytes == 0
              && d.on_device_oom == WOOLLY_DEVICE_OOM_CPU,
          "defaults: %d %d %d %llu %d", d.gpu_layers, d.main_gpu, (int)d.split_mode,
          (unsigned long long)d.gpu_margin_bytes, (int)d.on_device_oom);

    check_devices_report();
    check_bad_params();

    /* Auto and CPU only load and generate; without a GPU both run on the CPU and agree. */
    char with_auto[1024] = {0}, cpu_only[1024] = {0};
    int ok = greedy_text(-1, with_auto, sizeof with_auto);
    ok &= greedy_text(0, cpu_only, sizeof cpu_only);
    char *j = devices_json();
    if (ok && j && strstr(j, "\"available\":false"))
        CHECK(strcmp(with_auto, cpu_only) == 0, "auto %s vs cpu %s", with_auto, cpu_only);
    free(j);

    /* A margin larger than any device: everything on the CPU, the load still succeeds. */
    woolly_model_params mp = woolly_model_default_params();
    mp.gpu_margin_bytes = UINT64_MAX;
    mp.split_mode = WOOLLY_SPLIT_NONE;
    mp.main_gpu = 99; /* no such device: the best one */
    mp.on_device_oom = WOOLLY_DEVICE_OOM_ERROR;
    woolly_model *model = NULL;
    woolly_status st = woolly_model_load(NULL, mp, &model);
    CHECK(st == WOOLLY_OK && model, "huge margin, main_gpu 99: %s", woolly_status_name(st));
    /* The choice is echoed with the placement. */
    char info[65536];
    size_t len = 0;
    st = model ? woolly_model_info_json(model, info, sizeof info, &len) : WOOLLY_ERR_NULL_ARGUMENT;
    CHECK(st == WOOLLY_OK && strstr(info, "\"on_device_oom\":\"error\""), "info: %s", woolly_status_name(st));
    woolly_model_free(model);

    return finish("test_gpu");
}
