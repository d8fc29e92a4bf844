/* api_models.c - what the server serves: GET /v1/models (OpenAI's list), GET /v1/models/{id}
 * (one model, or 404 in OpenAI's shape) and GET /version ({"version"}, as vLLM's).
 */
#include "api.h"
#include "http_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* OpenAI's model object for the served model, with vLLM's max_model_len */
static cJSON *model_card(const api_ctx *a)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", a->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "cinder");
    cJSON_AddNumberToObject(m, "max_model_len", a->f->max_seq_len);
    return m;
}

int api_models(api_ctx *a, http_conn *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(j, "data"), model_card(a));
    http_send_cjson(c, 200, j);
    return 200;
}

int api_model(api_ctx *a, http_conn *c, const char *id)
{
    if (strcmp(id, a->model_name)) {
        char msg[320];
        snprintf(msg, sizeof msg, "The model `%.256s` does not exist", id);
        return api_openai_error(c, 404, msg);
    }
    http_send_cjson(c, 200, model_card(a));
    return 200;
}

int api_check_model(const api_ctx *a, const cJSON *req, char *err, size_t n_err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(req, "model");
    if (!model || cJSON_IsNull(model) || (cJSON_IsString(model) && !strcmp(model->valuestring, a->model_name)))
        return 0;
    snprintf(err, n_err, "The model `%.256s` does not exist", cJSON_IsString(model) ? model->valuestring : "?");
    return 404;
}

int api_version(http_conn *c)
{
    http_send_json(c, 200, "{\"version\":\"" CINDER_VERSION "\"}", NULL);
    return 200;
}
