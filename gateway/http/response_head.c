/* placeholder: replaced by the implementation */
typedef int gw_placeholder_response_head_t;
