/* placeholder: replaced by the implementation */
typedef int gw_placeholder_balancer_t;
