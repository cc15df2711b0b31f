// proc_read_cost — what one private-memory reading costs: /proc/<pid>/status (read now) vs
// /proc/<pid>/smaps_rollup (read before issue 27), over the same processes, interleaved.
//
//   proc_read_cost ROUNDS PID...
//
// Prints "status_us=.. rollup_us=.. reads=N": mean microseconds per read of each file.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

using Clock = std::chrono::steady_clock;

static double read_all(const std::vector<int> &pids, const char *file)
{
    static char buffer[1 << 16];
    auto t0 = Clock::now();
    for (int pid : pids)
    {
        char path[64];
        std::snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        while (read(fd, buffer, sizeof(buffer)) > 0)
        {
        }
        close(fd);
    }
    return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

int main(int argc, char **argv)
{
    if (argc < 3)
    {
        std::fprintf(stderr, "usage: %s ROUNDS PID...\n", argv[0]);
        return 2;
    }
    int rounds = std::atoi(argv[1]);
    std::vector<int> pids;
    for (int i = 2; i < argc; i++)
        pids.push_back(std::atoi(argv[i]));
    double status = 0, rollup = 0;
    for (int r = 0; r < rounds; r++)
    {
        status += read_all(pids, "status");
        rollup += read_all(pids, "smaps_rollup");
    }
    double reads = (double)rounds * pids.size();
    std::printf("status_us=%.2f rollup_us=%.2f reads=%.0f\n", status / reads, rollup / reads, reads);
    return 0;
}
