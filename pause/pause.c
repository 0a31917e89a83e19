/* berth's pause: the process of a pod's infra container. It holds the pod's namespaces, reaps
 * what is reparented to it (it is PID 1 of its namespace) and exits 0 on SIGINT or SIGTERM, so
 * that stopping a pod is immediate. Built static by build.rs: the infra image has nothing else. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void down(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = down;
    sigaction(SIGINT, &sa, 0);
    sigaction(SIGTERM, &sa, 0);
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    for (;;)
        pause();
}
