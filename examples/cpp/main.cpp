// A desktop-style use of Woolly from C++: load with a progress bar, stream a reply, Ctrl-C
// aborts the generation cleanly (the model stays loaded and is freed on the way out).
//
//   woolly_chat [--model PATH] [-n MAX_TOKENS] [--temp T] [--seed S] [--chat] PROMPT
#include <woolly.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

namespace {

std::atomic<bool> interrupted{false};

extern "C" void on_sigint(int) {
    interrupted.store(true);
    std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program the usual way
}

bool on_progress(float progress, void *) {
    const int width = 30;
    int filled = static_cast<int>(progress * width);
    std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "==============================",
                 width - filled, "", static_cast<int>(progress * 100));
    if (progress >= 1.0f) std::fputc('\n', stderr);
    return !interrupted.load();
}

bool on_token(const char *piece, size_t len, int32_t, void *) {
    std::fwrite(piece, 1, len, stdout);
    std::fflush(stdout);
    return true;
}

// RAII owners for the C handles.
struct ModelDeleter {
    void operator()(woolly_model *m) const { woolly_model_free(m); }
};
struct SessionDeleter {
    void operator()(woolly_session *s) const { woolly_session_free(s); }
};

int fail(const char *what, woolly_status st) {
    std::fprintf(stderr, "%s: %s: %s\n", what, woolly_status_name(st), woolly_last_error());
    return 1;
}

}  // namespace

int main(int argc, char **argv) {
    const char *model_path = nullptr;
    const char *prompt = nullptr;
    uint32_t max_tokens = 256;
    bool chat = false;
    woolly_generate_params gp = woolly_generate_default_params();
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--model") && i + 1 < argc) {
            model_path = argv[++i];
        } else if (!std::strcmp(argv[i], "-n") && i + 1 < argc) {
            max_tokens = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (!std::strcmp(argv[i], "--temp") && i + 1 < argc) {
            gp.temperature = std::strtof(argv[++i], nullptr);
        } else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) {
            gp.seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (!std::strcmp(argv[i], "--chat")) {
            chat = true;
        } else {
            prompt = argv[i];
        }
    }
    if (!prompt) {
        std::fprintf(stderr, "usage: %s [--model PATH] [-n MAX_TOKENS] [--temp T] [--seed S] [--chat] PROMPT\n",
                     argv[0]);
        return 2;
    }
    std::signal(SIGINT, on_sigint);
    std::fprintf(stderr, "Woolly %s (ABI %u)\n", woolly_version(), woolly_abi_version());

    woolly_model_params mp = woolly_model_default_params();
    mp.progress_callback = on_progress;
    woolly_model *raw_model = nullptr;
    woolly_status st = woolly_model_load(model_path, mp, &raw_model);
    if (st == WOOLLY_ERR_CANCELLED) {
        std::fprintf(stderr, "\n[load cancelled]\n");
        return 130;
    }
    if (st != WOOLLY_OK) return fail("load", st);
    std::unique_ptr<woolly_model, ModelDeleter> model(raw_model);

    woolly_session_params sp = woolly_session_default_params();
    sp.thread_policy = WOOLLY_THREADS_INTERACTIVE;  // leave a core to the UI
    woolly_session *raw_session = nullptr;
    st = woolly_session_create(model.get(), sp, &raw_session);
    if (st != WOOLLY_OK) return fail("session", st);
    std::unique_ptr<woolly_session, SessionDeleter> session(raw_session);

    // The UI thread would call woolly_abort from its Stop button; here a watcher does it when
    // Ctrl-C arrives (a signal handler should do no more than set a flag).
    std::atomic<bool> done{false};
    std::thread watcher([&] {
        while (!done.load()) {
            if (interrupted.load()) woolly_abort(session.get());
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });

    gp.max_tokens = max_tokens;
    gp.chat = chat;
    st = woolly_session_generate(session.get(), prompt, gp, on_token, nullptr);
    done.store(true);
    watcher.join();
    std::fputc('\n', stdout);
    if (st == WOOLLY_ERR_CANCELLED) {
        std::fprintf(stderr, "[aborted]\n");
        return 130;
    }
    if (st != WOOLLY_OK) return fail("generate", st);
    return 0;
}
