/* Power and heat from C: the profile, the thermal monitor on a fake sysfs tree (throttling with
 * hysteresis), the state as JSON, and the opt-in governor call reporting refusal. */
#include <woolly.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static char root[256], zone[1024], json[4096];

static void set_temp(int millic) {
    FILE *f = fopen(zone, "w");
    fprintf(f, "%d\n", millic);
    fclose(f);
}

static bool state_has(const char *needle) {
    size_t len;
    for (int i = 0; i < 300; i++) {
        if (woolly_power_state_json(json, sizeof json, &len) == WOOLLY_OK && strstr(json, needle)) return true;
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    return false;
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/woolly-power-test-%d", (int)getpid());
    char dir[512];
    mkdir(root, 0700);
    snprintf(dir, sizeof dir, "%s/sys", root);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/sys/class", root);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/sys/class/thermal", root);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/sys/class/thermal/thermal_zone0", root);
    mkdir(dir, 0700);
    snprintf(zone, sizeof zone, "%s/temp", dir);
    set_temp(60000);

    CHECK(woolly_set_power_profile(WOOLLY_POWER_SAVER) == WOOLLY_OK, "profile");
    CHECK(state_has("\"profile\":\"power_saver\""), "state: %s", json);
    CHECK(woolly_set_power_profile((woolly_power_profile)9) == WOOLLY_ERR_INVALID_ARGUMENT, "bad profile");
    CHECK(woolly_set_power_profile(WOOLLY_POWER_BALANCED) == WOOLLY_OK, "balanced");

    CHECK(woolly_start_thermal_monitor(-5.0f, 10, root) == WOOLLY_ERR_INVALID_ARGUMENT, "bad threshold");
    CHECK(woolly_start_thermal_monitor(0.0f, 10, root) == WOOLLY_OK, "monitor");
    CHECK(state_has("\"temperature_c\":60.0"), "reads the fake zone: %s", json);
    CHECK(state_has("\"throttled\":false"), "cool: %s", json);
    set_temp(85000);
    CHECK(state_has("\"throttled\":true"), "hot: %s", json);
    set_temp(77000); /* under 80 but not 5 degrees under */
    CHECK(state_has("\"temperature_c\":77.0") && strstr(json, "\"throttled\":true"), "hysteresis: %s", json);
    set_temp(70000);
    CHECK(state_has("\"throttled\":false"), "restored: %s", json);
    CHECK(strstr(json, "\"throttle_events\":1"), "one event: %s", json);
    woolly_stop_thermal_monitor();
    CHECK(state_has("\"thermal_monitor\":false"), "stopped: %s", json);

    CHECK(woolly_set_cpu_governor(NULL, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "governor NULL");
    CHECK(woolly_set_gpu_power_limit(0, -1.0) == WOOLLY_ERR_INVALID_ARGUMENT, "bad watts");
    /* (A valid limit is never tried here: on a machine with a GPU, as root, it would change it.) */
    CHECK(woolly_set_cpu_governor("powersave", root) == WOOLLY_ERR_UNSUPPORTED, "no cpufreq in the fake tree");
    size_t len;
    CHECK(woolly_power_state_json(json, sizeof json, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "len NULL");
    CHECK(woolly_power_state_json(NULL, 0, &len) == WOOLLY_ERR_BUFFER_TOO_SMALL && len > 10, "size query");

    /* Metrics: Prometheus text and JSON; the doctor without measuring. */
    static char big[1 << 20];
    CHECK(woolly_metrics_prometheus(big, sizeof big, &len) == WOOLLY_OK && strstr(big, "# TYPE ") &&
              strstr(big, "woolly_thermal_throttle_events_total"),
          "prometheus: %.400s", big);
    CHECK(woolly_metrics_json(big, sizeof big, &len) == WOOLLY_OK && strstr(big, "\"metrics\""), "metrics json");
    CHECK(woolly_doctor_json(NULL, false, big, sizeof big, &len) == WOOLLY_OK && strstr(big, "\"cpu\"") &&
              strstr(big, "\"recommendations\""),
          "doctor: %.400s", big);
    CHECK(woolly_doctor_json(NULL, false, big, sizeof big, NULL) == WOOLLY_ERR_NULL_ARGUMENT, "doctor len NULL");

    unlink(zone);
    return finish("test_power");
}
